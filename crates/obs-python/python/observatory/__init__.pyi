from observatory._native import *  # noqa: F401,F403
from observatory._native import __version__ as __version__
