"""A stand-in for the reference's model builder, used by SEED.md's full example: it only
describes layers, which is all the example does with the model."""


class _Dense:
    def __init__(self, units, activation=None):
        self.units, self.activation = units, activation


class _Sequential:
    def __init__(self, layers, name):
        self.layers, self.name = layers, name


class ModelBuilder:
    def Dense(self, units, activation=None):  # noqa: N802 (the reference's name)
        return _Dense(units, activation)

    def Sequential(self, layers, name="model"):  # noqa: N802
        return _Sequential(layers, name)
