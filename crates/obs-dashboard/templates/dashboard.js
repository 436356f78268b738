(function () {
  'use strict';
  // Observatory dashboard charts: canvas line, bar, heatmap and timeline charts over
  // pre-aggregated buckets. Every user string reaches the page through textContent or
  // fillText, never as markup.
  var T0 = performance.now();
  var obs = window.__obs || { errors: [], alerts: 0, consoleErrors: 0 };
  var report = { charts: {}, errors: obs.errors };
  var PALETTE = ['#2563eb', '#f97316', '#16a34a', '#9333ea', '#dc2626', '#0891b2', '#ca8a04',
    '#db2777', '#4b5563', '#65a30d', '#7c3aed', '#0d9488'];
  var SEV_NAMES = ['info', 'success', 'warning', 'danger', 'critical'];
  var rootStyle = getComputedStyle(document.documentElement);
  function cssVar(name, fallback) {
    var v = rootStyle.getPropertyValue(name);
    return v && v.trim() ? v.trim() : fallback;
  }
  var C = {
    fg: cssVar('--fg', '#0f172a'), muted: cssVar('--muted', '#64748b'),
    grid: cssVar('--grid', '#eef2f7'), axis: cssVar('--axis', '#94a3b8'),
    accent: cssVar('--accent', '#2563eb'), panel: cssVar('--panel', '#ffffff'),
    sev: ['#64748b', '#16a34a', '#d97706', '#ea580c', '#dc2626']
  };
  if (C.accent.charAt(0) !== '#' || C.accent.length !== 7) C.accent = '#2563eb';
  var FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif';
  var tooltip = document.getElementById('obs-tooltip');

  function color(i) { return PALETTE[i % PALETTE.length]; }
  function alpha(hex, a) {
    var n = parseInt(hex.slice(1), 16);
    return 'rgba(' + (n >> 16 & 255) + ',' + (n >> 8 & 255) + ',' + (n & 255) + ',' + a + ')';
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmtInt(n) {
    var s = String(Math.round(n)), out = '';
    var neg = s.charAt(0) === '-';
    if (neg) s = s.slice(1);
    for (var i = 0; i < s.length; i++) {
      if (i > 0 && (s.length - i) % 3 === 0) out += ',';
      out += s.charAt(i);
    }
    return (neg ? '-' : '') + out;
  }
  function fmtShort(n) {
    var a = Math.abs(n);
    if (a >= 1e9) return +(n / 1e9).toPrecision(3) + 'G';
    if (a >= 1e6) return +(n / 1e6).toPrecision(3) + 'M';
    if (a >= 1e4) return +(n / 1e3).toPrecision(3) + 'k';
    return String(+n.toPrecision(4));
  }
  function fmtTick(v, step) {
    if (v === 0) return '0';
    var a = Math.abs(v);
    if (a >= 1e5 || a < 1e-3) return v.toExponential(2).replace(/\.?0+e/, 'e').replace('e+', 'e');
    var d = Math.max(0, Math.min(6, -Math.floor(Math.log10(step)) ));
    return v.toFixed(d);
  }
  function niceStep(range, count) {
    var raw = range / Math.max(1, count);
    var p = Math.pow(10, Math.floor(Math.log10(raw)));
    var f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
  }
  function ticks(a, b, count, integer) {
    if (!(b > a)) return [a];
    var step = niceStep(b - a, count);
    if (integer) step = Math.max(1, Math.round(step));
    var out = [];
    for (var t = Math.ceil(a / step) * step; t <= b + step * 1e-9 && out.length < 50; t += step) {
      out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
    }
    out.step = step;
    return out;
  }
  function logTicks(a, b) {
    var lo = Math.floor(Math.log10(a)), hi = Math.ceil(Math.log10(b)), out = [];
    var every = Math.max(1, Math.ceil((hi - lo) / 8));
    for (var k = lo; k <= hi; k += every) {
      var v = Math.pow(10, k);
      if (v >= a && v <= b) out.push(v);
      if (hi - lo <= 2) {
        [2, 5].forEach(function (m) { var w = m * v; if (w >= a && w <= b) out.push(w); });
      }
    }
    out.sort(function (x, y) { return x - y; });
    return out;
  }
  function fmtLog(v) {
    var k = Math.log10(v);
    if (Math.abs(k - Math.round(k)) < 1e-9) return Math.abs(k) <= 3 ? String(+v.toPrecision(3)) : '1e' + Math.round(k);
    return v.toExponential(0).replace('e+', 'e');
  }

  // ------------------------------------------------------------------ shared x views
  function AxisView(name, info) {
    this.name = name;
    this.w = info && info.w || 1;
    this.max = info && info.max !== null && info.max !== undefined ? info.max : 0;
    this.full = [-0.5, this.max + 0.5];
    this.lo = this.full[0];
    this.hi = this.full[1];
    this.charts = [];
    this.inputs = null;
  }
  AxisView.prototype.set = function (lo, hi) {
    var span = Math.max(hi - lo, 2);
    var fullSpan = this.full[1] - this.full[0];
    if (span >= fullSpan) { lo = this.full[0]; hi = this.full[1]; } else {
      if (hi - lo < span) { var mid = (lo + hi) / 2; lo = mid - span / 2; hi = mid + span / 2; }
      if (lo < this.full[0]) { hi += this.full[0] - lo; lo = this.full[0]; }
      if (hi > this.full[1]) { lo -= hi - this.full[1]; hi = this.full[1]; }
    }
    this.lo = lo;
    this.hi = hi;
    if (this.inputs) {
      this.inputs[0].value = String(Math.max(0, Math.ceil(lo)));
      this.inputs[1].value = String(Math.max(0, Math.floor(hi)));
    }
    this.charts.forEach(function (c) { c.draw(); });
  };
  AxisView.prototype.reset = function () { this.set(this.full[0], this.full[1]); };
  AxisView.prototype.zoomed = function () { return this.lo > this.full[0] || this.hi < this.full[1]; };

  // ------------------------------------------------------------------ series access
  function bucketRange(s, i, axis) {
    var a = i * s.w, b = Math.min(a + s.w - 1, Math.max(axis.max, a));
    return [a, b];
  }
  function bucketX(s, i, axis) {
    if (s.w === 1) return i;
    var r = bucketRange(s, i, axis);
    return (r[0] + r[1]) / 2;
  }
  function nonFinite(s) {
    if (!s._nf) {
      s._nf = {};
      (s.nf || []).forEach(function (p) { s._nf[p[0]] = p[1]; });
    }
    return s._nf;
  }
  function countAt(s, i) {
    if (s.n) return s.n[i] || 0;
    return s.v[i] === null || s.v[i] === undefined ? 0 : 1;
  }
  function rangeLabel(axis, r) {
    var unit = axis.name;
    return r[0] === r[1] ? unit + ' ' + fmtInt(r[0]) : unit + 's ' + fmtInt(r[0]) + '–' + fmtInt(r[1]);
  }

  // ------------------------------------------------------------------ tooltip
  function showTooltip(ev, head, rows) {
    while (tooltip.firstChild) tooltip.removeChild(tooltip.firstChild);
    tooltip.appendChild(el('div', 't-head', head));
    rows.forEach(function (r) {
      var row = el('div', 't-row');
      var sw = el('span', 'swatch');
      sw.style.background = r.color || C.muted;
      row.appendChild(sw);
      row.appendChild(el('span', 't-name', r.name));
      row.appendChild(el('span', 't-val', r.value));
      tooltip.appendChild(row);
    });
    tooltip.hidden = false;
    var pad = 14, w = tooltip.offsetWidth, h = tooltip.offsetHeight;
    var x = ev.clientX + pad, y = ev.clientY + pad;
    if (x + w > window.innerWidth - 4) x = ev.clientX - w - pad;
    if (y + h > window.innerHeight - 4) y = ev.clientY - h - pad;
    tooltip.style.left = Math.max(4, x) + 'px';
    tooltip.style.top = Math.max(4, y) + 'px';
  }
  function hideTooltip() { tooltip.hidden = true; }

  // ------------------------------------------------------------------ chart base
  function Chart(host, spec, axis, kind) {
    this.host = host;
    this.spec = spec;
    this.axis = axis;
    this.kind = kind;
    this.hidden = [];
    this.ylog = !!spec.ylog;
    this.marks = 0;
    this.margin = { l: 58, r: 14, t: 10, b: 24 };
    var title = host.parentNode.querySelector('h3');
    this.canvas = el('canvas');
    this.canvas.setAttribute('role', 'img');
    this.canvas.setAttribute('aria-label', title ? title.textContent : spec.id);
    this.overlay = el('canvas');
    this.overlay.style.position = 'absolute';
    this.overlay.style.left = '0';
    this.overlay.style.top = '0';
    host.appendChild(this.canvas);
    host.appendChild(this.overlay);
    this.legend = el('div', 'legend');
    host.parentNode.appendChild(this.legend);
    axis.charts.push(this);
    this.buildLegend();
    this.bind();
  }
  Chart.prototype.buildLegend = function () {
    var self = this;
    if (this.kind === 'timeline') {
      SEV_NAMES.forEach(function (n, i) {
        var b = el('label');
        var sw = el('span', 'swatch');
        sw.style.background = C.sev[i];
        sw.style.height = '8px';
        sw.style.width = '8px';
        sw.style.borderRadius = '50%';
        b.appendChild(sw);
        b.appendChild(el('span', 'name', n));
        b.style.cursor = 'default';
        self.legend.appendChild(b);
      });
      this.legend.appendChild(el('span', 'note', 'marker size = number of findings in the step range; click a row to open its diagnosis'));
      return;
    }
    if (this.kind === 'heatmap') {
      this.scaleNote = el('span', 'note', '');
      this.legend.appendChild(this.scaleNote);
      return;
    }
    this.spec.series.forEach(function (s, i) {
      self.hidden[i] = false;
      var b = el('button');
      b.type = 'button';
      b.setAttribute('aria-pressed', 'true');
      var sw = el('span', 'swatch');
      sw.style.background = color(s.color);
      b.appendChild(sw);
      b.appendChild(el('span', 'name', s.name));
      b.title = 'Show or hide ' + s.name;
      b.addEventListener('click', function () {
        self.hidden[i] = !self.hidden[i];
        b.setAttribute('aria-pressed', self.hidden[i] ? 'false' : 'true');
        self.draw();
      });
      self.legend.appendChild(b);
    });
    if (this.kind === 'line') {
      this.legend.appendChild(el('span', 'spacer'));
      var lg = el('button');
      lg.type = 'button';
      lg.setAttribute('aria-pressed', this.ylog ? 'true' : 'false');
      lg.appendChild(el('span', 'name', 'log scale'));
      lg.style.textDecoration = 'none';
      lg.addEventListener('click', function () {
        self.ylog = !self.ylog;
        lg.setAttribute('aria-pressed', self.ylog ? 'true' : 'false');
        lg.style.opacity = self.ylog ? '1' : '0.6';
        self.draw();
      });
      lg.style.opacity = this.ylog ? '1' : '0.6';
      this.legend.appendChild(lg);
    }
  };
  Chart.prototype.size = function () {
    var dpr = window.devicePixelRatio || 1;
    var w = Math.max(200, this.host.clientWidth), h = Math.max(120, this.host.clientHeight);
    [this.canvas, this.overlay].forEach(function (c) {
      if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
        c.width = Math.round(w * dpr);
        c.height = Math.round(h * dpr);
        c.style.width = w + 'px';
        c.style.height = h + 'px';
      }
    });
    this.W = w;
    this.H = h;
    this.dpr = dpr;
  };
  Chart.prototype.ctx = function (canvas) {
    var ctx = canvas.getContext('2d');
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.clearRect(0, 0, this.W, this.H);
    ctx.font = FONT;
    return ctx;
  };
  Chart.prototype.px = function (x) {
    var m = this.margin;
    return m.l + (x - this.axis.lo) / (this.axis.hi - this.axis.lo) * (this.W - m.l - m.r);
  };
  Chart.prototype.dataX = function (px) {
    var m = this.margin;
    return this.axis.lo + (px - m.l) / (this.W - m.l - m.r) * (this.axis.hi - this.axis.lo);
  };
  Chart.prototype.drawXAxis = function (ctx) {
    var m = this.margin, axis = this.axis;
    var n = Math.max(2, Math.floor((this.W - m.l - m.r) / 90));
    var ts = ticks(Math.max(0, axis.lo), axis.hi, n, true);
    ctx.fillStyle = C.muted;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    ctx.strokeStyle = C.grid;
    ctx.lineWidth = 1;
    ts.forEach(function (t) {
      var x = Math.round(this.px(t)) + 0.5;
      if (x < m.l - 1 || x > this.W - m.r + 1) return;
      ctx.beginPath();
      ctx.moveTo(x, m.t);
      ctx.lineTo(x, this.H - m.b);
      ctx.stroke();
      // The right end of the axis belongs to the axis name.
      if (x < this.W - m.r - 44) ctx.fillText(fmtShort(t), x, this.H - m.b + 5);
    }, this);
    ctx.strokeStyle = C.axis;
    ctx.beginPath();
    ctx.moveTo(m.l, this.H - m.b + 0.5);
    ctx.lineTo(this.W - m.r, this.H - m.b + 0.5);
    ctx.stroke();
    ctx.textAlign = 'right';
    ctx.fillStyle = C.fg;
    ctx.fillText(axis.name, this.W - m.r, this.H - m.b + 5);
  };
  Chart.prototype.visibleBuckets = function (s) {
    var first = Math.max(0, Math.floor((this.axis.lo - 0.5) / s.w));
    var last = Math.min((s.v || s.n).length - 1, Math.ceil((this.axis.hi + 0.5) / s.w));
    return [first, last];
  };
  Chart.prototype.bind = function () {
    var self = this, o = this.overlay, drag = null;
    function local(ev) {
      var r = o.getBoundingClientRect();
      return { x: ev.clientX - r.left, y: ev.clientY - r.top };
    }
    o.addEventListener('mousedown', function (ev) {
      if (ev.button !== 0) return;
      var p = local(ev);
      drag = { x0: p.x, x: p.x, pan: ev.shiftKey, lo: self.axis.lo, hi: self.axis.hi };
      ev.preventDefault();
    });
    o.addEventListener('mousemove', function (ev) {
      var p = local(ev);
      if (drag) {
        drag.x = p.x;
        if (drag.pan) {
          var per = (drag.hi - drag.lo) / (self.W - self.margin.l - self.margin.r);
          var d = (p.x - drag.x0) * per;
          self.axis.set(drag.lo - d, drag.hi - d);
        } else {
          self.drawOverlay(null, drag);
        }
        hideTooltip();
        return;
      }
      self.hover(ev, p);
    });
    o.addEventListener('mouseleave', function () {
      if (!drag) { hideTooltip(); self.drawOverlay(null, null); }
    });
    window.addEventListener('mouseup', function () {
      if (!drag) return;
      var d = drag;
      drag = null;
      if (!d.pan && Math.abs(d.x - d.x0) > 5) {
        var a = self.dataX(Math.min(d.x, d.x0)), b = self.dataX(Math.max(d.x, d.x0));
        self.axis.set(a, b);
      } else {
        self.drawOverlay(null, null);
      }
    });
    o.addEventListener('dblclick', function () { self.axis.reset(); });
    o.addEventListener('wheel', function (ev) {
      if (!(ev.ctrlKey || ev.metaKey || ev.altKey)) return;
      ev.preventDefault();
      var p = local(ev), x = self.dataX(p.x);
      var f = ev.deltaY > 0 ? 1.25 : 0.8;
      self.axis.set(x - (x - self.axis.lo) * f, x + (self.axis.hi - x) * f);
    }, { passive: false });
    if (this.kind === 'timeline') {
      o.addEventListener('click', function (ev) {
        var row = self.rowAt(local(ev).y);
        if (row < 0) return;
        var d = document.getElementById('rule-' + row);
        if (!d) return;
        d.open = true;
        d.classList.add('flash');
        setTimeout(function () { d.classList.remove('flash'); }, 1200);
        if (d.scrollIntoView) d.scrollIntoView({ behavior: 'smooth', block: 'center' });
      });
      o.style.cursor = 'pointer';
    }
  };
  Chart.prototype.drawOverlay = function (mark, drag) {
    var ctx = this.ctx(this.overlay), m = this.margin;
    if (drag && !drag.pan) {
      var a = Math.min(drag.x, drag.x0), b = Math.max(drag.x, drag.x0);
      ctx.fillStyle = alpha(C.accent, 0.12);
      ctx.fillRect(a, m.t, b - a, this.H - m.t - m.b);
      ctx.strokeStyle = C.accent;
      ctx.strokeRect(a + 0.5, m.t + 0.5, b - a, this.H - m.t - m.b);
    }
    if (mark) {
      ctx.strokeStyle = C.axis;
      ctx.setLineDash([3, 3]);
      ctx.beginPath();
      ctx.moveTo(Math.round(mark.x) + 0.5, m.t);
      ctx.lineTo(Math.round(mark.x) + 0.5, this.H - m.b);
      ctx.stroke();
      ctx.setLineDash([]);
      (mark.points || []).forEach(function (p) {
        ctx.fillStyle = C.panel;
        ctx.strokeStyle = p.color;
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.arc(p.x, p.y, 4, 0, Math.PI * 2);
        ctx.fill();
        ctx.stroke();
      });
    }
  };

  // ------------------------------------------------------------------ line and bar charts
  function LineChart(host, spec, axis, kind) { Chart.call(this, host, spec, axis, kind); }
  LineChart.prototype = Object.create(Chart.prototype);
  LineChart.prototype.yRange = function () {
    var lo = Infinity, hi = -Infinity, self = this;
    this.spec.series.forEach(function (s, si) {
      if (self.hidden[si]) return;
      var r = self.visibleBuckets(s);
      for (var i = r[0]; i <= r[1]; i++) {
        if (s.v[i] === null || s.v[i] === undefined) continue;
        var a = s.lo ? s.lo[i] : s.v[i], b = s.hi ? s.hi[i] : s.v[i];
        if (self.ylog) {
          if (a > 0 && a < lo) lo = a;
          if (b > 0 && b > hi) hi = b;
          if (!(a > 0) && b > 0 && b < lo) lo = b;
        } else {
          if (a < lo) lo = a;
          if (b > hi) hi = b;
        }
      }
    });
    if (this.kind === 'bar') lo = Math.min(0, lo);
    if (!(hi >= lo)) return this.ylog ? [0.1, 10] : [0, 1];
    if (this.ylog) {
      if (hi === lo) return [lo / 2, hi * 2];
      var k = Math.pow(hi / lo, 0.05);
      return [lo / k, hi * k];
    }
    if (hi === lo) { var d = Math.abs(hi) * 0.1 || 1; return [lo - d, hi + d]; }
    var pad = (hi - lo) * 0.06;
    return [this.kind === 'bar' && lo === 0 ? 0 : lo - pad, hi + pad];
  };
  LineChart.prototype.py = function (v) {
    var m = this.margin, h = this.H - m.t - m.b;
    if (this.ylog) {
      var a = Math.log10(this.y0), b = Math.log10(this.y1);
      return m.t + h - (Math.log10(v) - a) / (b - a) * h;
    }
    return m.t + h - (v - this.y0) / (this.y1 - this.y0) * h;
  };
  LineChart.prototype.draw = function () {
    this.size();
    var ctx = this.ctx(this.canvas), m = this.margin, self = this;
    var yr = this.yRange();
    this.y0 = yr[0];
    this.y1 = yr[1];
    // Horizontal grid and y labels.
    var ys = this.ylog ? logTicks(yr[0], yr[1]) : ticks(yr[0], yr[1], Math.max(2, Math.floor((this.H - m.t - m.b) / 45)), false);
    ctx.strokeStyle = C.grid;
    ctx.fillStyle = C.muted;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    ys.forEach(function (t) {
      var y = Math.round(self.py(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(m.l, y);
      ctx.lineTo(self.W - m.r, y);
      ctx.stroke();
      ctx.fillText(self.ylog ? fmtLog(t) : fmtTick(t, ys.step || 1), m.l - 6, y);
    });
    this.drawXAxis(ctx);
    ctx.save();
    ctx.beginPath();
    ctx.rect(m.l, m.t - 6, this.W - m.l - m.r, this.H - m.t - m.b + 6);
    ctx.clip();
    var marks = 0;
    var plotW = this.W - m.l - m.r;
    this.spec.series.forEach(function (s, si) {
      if (self.hidden[si]) return;
      var col = color(s.color), r = self.visibleBuckets(s);
      var bw = Math.max(1, s.w / (self.axis.hi - self.axis.lo) * plotW);
      var ok = function (v) { return v !== null && v !== undefined && (!self.ylog || v > 0); };
      if (self.kind === 'bar') {
        var base = self.py(self.ylog ? self.y0 : Math.max(0, self.y0));
        for (var i = r[0]; i <= r[1]; i++) {
          if (!ok(s.v[i])) continue;
          var x = self.px(bucketX(s, i, self.axis)), y = self.py(s.v[i]);
          var barW = Math.max(1, Math.min(48, bw * 0.72));
          ctx.fillStyle = alpha(col, 0.85);
          ctx.fillRect(x - barW / 2, Math.min(y, base), barW, Math.max(1, Math.abs(base - y)));
          if (s.lo && s.n[i] > 1) {
            ctx.strokeStyle = C.fg;
            ctx.beginPath();
            ctx.moveTo(x, self.py(s.lo[i]));
            ctx.lineTo(x, self.py(s.hi[i]));
            ctx.stroke();
          }
          marks++;
        }
      } else {
        if (s.lo) {
          // The min-max band: one sliver per bucket, so a single spike stays visible. Narrow
          // slivers are drawn stronger: a one-pixel spike must not fade away.
          ctx.fillStyle = alpha(col, bw < 3 ? 0.5 : 0.22);
          var sliver = Math.max(bw, 1.2);
          for (var j = r[0]; j <= r[1]; j++) {
            if (!ok(s.v[j]) || s.n[j] < 2) continue;
            var lo = ok(s.lo[j]) ? s.lo[j] : self.y0, hi = s.hi[j];
            if (!ok(hi)) continue;
            var bx = self.px(bucketX(s, j, self.axis));
            var top = self.py(hi), bot = self.py(lo);
            ctx.fillRect(bx - sliver / 2, top, sliver, Math.max(1, bot - top));
            marks++;
          }
        }
        ctx.strokeStyle = col;
        ctx.lineWidth = 1.6;
        ctx.lineJoin = 'round';
        ctx.beginPath();
        var pen = false, visible = 0;
        for (var k = r[0]; k <= r[1]; k++) {
          if (!ok(s.v[k])) { pen = false; continue; }
          var px = self.px(bucketX(s, k, self.axis)), py = self.py(s.v[k]);
          if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
          pen = true;
          visible++;
        }
        ctx.stroke();
        marks += visible;
        if (visible <= 60) {
          ctx.fillStyle = col;
          for (var q = r[0]; q <= r[1]; q++) {
            if (!ok(s.v[q])) continue;
            ctx.beginPath();
            ctx.arc(self.px(bucketX(s, q, self.axis)), self.py(s.v[q]), 2.6, 0, Math.PI * 2);
            ctx.fill();
          }
        }
      }
      // Non-finite values: red triangles along the top edge.
      var nf = nonFinite(s);
      ctx.fillStyle = C.sev[4];
      Object.keys(nf).forEach(function (key) {
        var idx = +key;
        if (idx < r[0] || idx > r[1]) return;
        var tx = self.px(bucketX(s, idx, self.axis));
        ctx.beginPath();
        ctx.moveTo(tx - 5, m.t - 5);
        ctx.lineTo(tx + 5, m.t - 5);
        ctx.lineTo(tx, m.t + 4);
        ctx.closePath();
        ctx.fill();
        marks++;
      });
    });
    ctx.restore();
    ctx.strokeStyle = C.axis;
    ctx.beginPath();
    ctx.moveTo(m.l + 0.5, m.t);
    ctx.lineTo(m.l + 0.5, this.H - m.b);
    ctx.stroke();
    this.marks = marks;
    this.drawOverlay(null, null);
  };
  LineChart.prototype.hover = function (ev, p) {
    var self = this, m = this.margin;
    if (p.x < m.l || p.x > this.W - m.r) { hideTooltip(); this.drawOverlay(null, null); return; }
    var x = this.dataX(p.x), rows = [], points = [], head = null, bestDist = Infinity, markX = p.x;
    var radius = Math.max(1, 10 / (this.W - m.l - m.r) * (this.axis.hi - this.axis.lo));
    this.spec.series.forEach(function (s, si) {
      if (self.hidden[si]) return;
      var nf = nonFinite(s), center = Math.floor((x + 0.5) / s.w), found = -1, fd = Infinity;
      var reach = Math.ceil(radius / s.w) + 1;
      for (var i = Math.max(0, center - reach); i <= Math.min(s.v.length - 1, center + reach); i++) {
        var has = (s.v[i] !== null && s.v[i] !== undefined) || nf[i];
        if (!has) continue;
        var d = Math.abs(bucketX(s, i, self.axis) - x);
        if (d < fd) { fd = d; found = i; }
      }
      if (found < 0 || fd > radius + s.w / 2) return;
      var col = color(s.color), v = s.v[found], text;
      if (v === null || v === undefined) text = '—';
      else if (countAt(s, found) > 1) text = 'mean ' + String(v) + ' · min ' + String(s.lo[found]) + ' · max ' + String(s.hi[found]) + ' (' + fmtInt(s.n[found]) + ' values)';
      else text = String(v);
      if (nf[found]) text += ' · ' + fmtInt(nf[found]) + ' non-finite (NaN/Inf)';
      rows.push({ name: s.name, value: text, color: col });
      if (fd < bestDist) {
        bestDist = fd;
        head = rangeLabel(self.axis, bucketRange(s, found, self.axis));
        markX = self.px(bucketX(s, found, self.axis));
      }
      if (v !== null && v !== undefined && (!self.ylog || v > 0)) {
        points.push({ x: self.px(bucketX(s, found, self.axis)), y: self.py(v), color: col });
      }
    });
    if (!rows.length) { hideTooltip(); this.drawOverlay(null, null); return; }
    this.drawOverlay({ x: markX, points: points }, null);
    showTooltip(ev, head, rows);
  };

  // ------------------------------------------------------------------ heatmap (layers x steps)
  function HeatChart(host, spec, axis) {
    Chart.call(this, host, spec, axis, 'heatmap');
    var ctx = this.canvas.getContext('2d');
    ctx.font = FONT;
    var widest = 0;
    spec.series.forEach(function (s) { widest = Math.max(widest, ctx.measureText(label(s.name)).width); });
    this.margin.l = Math.min(200, Math.max(58, widest + 14));
    var lo = Infinity, hi = -Infinity;
    spec.series.forEach(function (s) {
      var arr = s.hi || s.v;
      for (var i = 0; i < arr.length; i++) {
        if (arr[i] > 0) { var l = Math.log10(arr[i]); if (l < lo) lo = l; if (l > hi) hi = l; }
      }
    });
    if (!(hi >= lo)) { lo = 0; hi = 1; }
    if (hi === lo) { lo -= 0.5; hi += 0.5; }
    this.l0 = lo;
    this.l1 = hi;
    this.scaleNote.textContent = 'colour scale: 10^' + lo.toFixed(1) + ' (dark) to 10^' + hi.toFixed(1) + ' (bright); red = NaN/Inf';
  }
  HeatChart.prototype = Object.create(Chart.prototype);
  function label(name) { return name.length > 30 ? name.slice(0, 29) + '…' : name; }
  // A perceptual ramp from deep blue through teal and green to yellow.
  var RAMP = [[32, 18, 77], [42, 72, 142], [33, 131, 141], [53, 183, 121], [170, 220, 50], [253, 231, 37]];
  function ramp(t) {
    t = Math.max(0, Math.min(1, t)) * (RAMP.length - 1);
    var i = Math.min(RAMP.length - 2, Math.floor(t)), f = t - i, a = RAMP[i], b = RAMP[i + 1];
    return 'rgb(' + Math.round(a[0] + (b[0] - a[0]) * f) + ',' + Math.round(a[1] + (b[1] - a[1]) * f) + ',' + Math.round(a[2] + (b[2] - a[2]) * f) + ')';
  }
  HeatChart.prototype.rowAt = function (y) {
    var m = this.margin, n = this.spec.series.length, h = (this.H - m.t - m.b) / n;
    var r = Math.floor((y - m.t) / h);
    return r >= 0 && r < n ? r : -1;
  };
  HeatChart.prototype.draw = function () {
    this.size();
    var ctx = this.ctx(this.canvas), m = this.margin, self = this;
    var n = this.spec.series.length, rh = (this.H - m.t - m.b) / n, plotW = this.W - m.l - m.r;
    var marks = 0;
    // Axis first: the cells then cover its grid lines.
    this.drawXAxis(ctx);
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    this.spec.series.forEach(function (s, row) {
      var y = m.t + row * rh;
      ctx.fillStyle = C.muted;
      if (rh >= 9) ctx.fillText(label(s.name), m.l - 6, y + rh / 2);
      var r = self.visibleBuckets(s), bw = Math.max(1, s.w / (self.axis.hi - self.axis.lo) * plotW);
      var nf = nonFinite(s), arr = s.hi || s.v;
      ctx.save();
      ctx.beginPath();
      ctx.rect(m.l, m.t, plotW, self.H - m.t - m.b);
      ctx.clip();
      for (var i = r[0]; i <= r[1]; i++) {
        var v = arr[i], x = self.px(bucketX(s, i, self.axis)) - bw / 2;
        if (nf[i]) ctx.fillStyle = C.sev[4];
        else if (v > 0) ctx.fillStyle = ramp((Math.log10(v) - self.l0) / (self.l1 - self.l0));
        else if (v === 0) ctx.fillStyle = ramp(0);
        else continue;
        ctx.fillRect(x, y + 0.5, bw + 0.6, Math.max(1, rh - 1));
        marks++;
      }
      ctx.restore();
    });
    this.marks = marks;
    this.drawOverlay(null, null);
  };
  HeatChart.prototype.hover = function (ev, p) {
    var m = this.margin, row = this.rowAt(p.y);
    if (row < 0 || p.x < m.l || p.x > this.W - m.r) { hideTooltip(); this.drawOverlay(null, null); return; }
    var s = this.spec.series[row], x = this.dataX(p.x), i = Math.floor((x + 0.5) / s.w);
    if (i < 0 || i >= s.v.length) { hideTooltip(); return; }
    var nf = nonFinite(s), rows = [], col = color(s.color);
    if (s.v[i] === null && !nf[i]) { hideTooltip(); this.drawOverlay(null, null); return; }
    if (s.v[i] !== null) {
      if (countAt(s, i) > 1) {
        rows.push({ name: 'max', value: String(s.hi[i]), color: col });
        rows.push({ name: 'mean', value: String(s.v[i]), color: col });
        rows.push({ name: 'min', value: String(s.lo[i]), color: col });
        rows.push({ name: 'values', value: fmtInt(s.n[i]), color: col });
      } else {
        rows.push({ name: 'norm', value: String(s.v[i]), color: col });
      }
    }
    if (nf[i]) rows.push({ name: 'non-finite', value: fmtInt(nf[i]), color: C.sev[4] });
    this.drawOverlay({ x: this.px(bucketX(s, i, this.axis)), points: [] }, null);
    showTooltip(ev, s.name + ' · ' + rangeLabel(this.axis, bucketRange(s, i, this.axis)), rows);
  };

  // ------------------------------------------------------------------ health timeline
  function TimelineChart(host, spec, axis) {
    Chart.call(this, host, spec, axis, 'timeline');
    var ctx = this.canvas.getContext('2d');
    ctx.font = FONT;
    var widest = 0;
    spec.series.forEach(function (s) { widest = Math.max(widest, ctx.measureText(label(s.name)).width); });
    this.margin.l = Math.min(220, Math.max(58, widest + 16));
    var rows = spec.series.length;
    host.style.height = Math.max(120, Math.min(640, rows * 28 + 40)) + 'px';
  }
  TimelineChart.prototype = Object.create(Chart.prototype);
  TimelineChart.prototype.rowAt = HeatChart.prototype.rowAt;
  TimelineChart.prototype.draw = function () {
    this.size();
    var ctx = this.ctx(this.canvas), m = this.margin, self = this;
    var n = this.spec.series.length, rh = (this.H - m.t - m.b) / n, marks = 0;
    this.drawXAxis(ctx);
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    this.spec.series.forEach(function (s, row) {
      var y = m.t + row * rh + rh / 2;
      if (row % 2 === 1) {
        ctx.fillStyle = alpha('#94a3b8', 0.08);
        ctx.fillRect(m.l, m.t + row * rh, self.W - m.l - m.r, rh);
      }
      ctx.fillStyle = C.fg;
      ctx.fillText(label(s.name), m.l - 8, y);
      var r = self.visibleBuckets(s);
      for (var i = r[0]; i <= r[1]; i++) {
        var c = countAt(s, i);
        if (!c) continue;
        var sev = s.s[i];
        var x = self.px(bucketX(s, i, self.axis));
        if (x < m.l - 4 || x > self.W - m.r + 4) continue;
        var rad = Math.min(Math.max(3, rh / 2 - 2), 3 + 1.6 * Math.log2(c));
        ctx.fillStyle = alpha(C.sev[Math.max(0, Math.min(4, sev | 0))], 0.8);
        ctx.beginPath();
        ctx.arc(x, y, rad, 0, Math.PI * 2);
        ctx.fill();
        marks++;
      }
    });
    this.marks = marks;
    this.drawOverlay(null, null);
  };
  TimelineChart.prototype.hover = function (ev, p) {
    var row = this.rowAt(p.y), m = this.margin;
    if (row < 0 || p.x < m.l - 4 || p.x > this.W - m.r + 4) { hideTooltip(); this.drawOverlay(null, null); return; }
    var s = this.spec.series[row], x = this.dataX(p.x), best = -1, bd = Infinity;
    var radius = 8 / (this.W - m.l - m.r) * (this.axis.hi - this.axis.lo);
    var center = Math.floor((x + 0.5) / s.w), reach = Math.ceil(radius / s.w) + 1;
    for (var i = Math.max(0, center - reach); i <= Math.min(s.n.length - 1, center + reach); i++) {
      if (!countAt(s, i)) continue;
      var d = Math.abs(bucketX(s, i, this.axis) - x);
      if (d < bd) { bd = d; best = i; }
    }
    if (best < 0 || bd > radius + s.w / 2) { hideTooltip(); this.drawOverlay(null, null); return; }
    var sev = s.s[best];
    var sevIdx = Math.max(0, Math.min(4, sev | 0));
    this.drawOverlay({ x: this.px(bucketX(s, best, this.axis)), points: [] }, null);
    showTooltip(ev, s.name + ' · ' + rangeLabel(this.axis, bucketRange(s, best, this.axis)), [
      { name: 'findings', value: fmtInt(countAt(s, best)), color: C.sev[sevIdx] },
      { name: 'worst severity', value: SEV_NAMES[sevIdx], color: C.sev[sevIdx] }
    ]);
  };

  // ------------------------------------------------------------------ toolbar
  function toolbar(axis) {
    var bar = document.querySelector('.toolbar[data-axis="' + axis.name + '"]');
    if (!bar) return;
    var from = el('input'), to = el('input'), go = el('button', '', 'Zoom'), reset = el('button', '', 'Reset zoom');
    [from, to].forEach(function (i) { i.type = 'number'; i.min = '0'; i.step = '1'; });
    from.setAttribute('aria-label', axis.name + ' from');
    to.setAttribute('aria-label', axis.name + ' to');
    go.type = 'button';
    reset.type = 'button';
    bar.appendChild(el('span', '', axis.name + 's'));
    bar.appendChild(from);
    bar.appendChild(el('span', '', 'to'));
    bar.appendChild(to);
    bar.appendChild(go);
    bar.appendChild(reset);
    axis.inputs = [from, to];
    from.value = '0';
    to.value = String(axis.max);
    function apply() {
      var a = parseFloat(from.value), b = parseFloat(to.value);
      if (isFinite(a) && isFinite(b) && b > a) axis.set(a - 0.5, b + 0.5);
    }
    go.addEventListener('click', apply);
    [from, to].forEach(function (i) { i.addEventListener('keydown', function (ev) { if (ev.key === 'Enter') apply(); }); });
    reset.addEventListener('click', function () { axis.reset(); });
  }

  // ------------------------------------------------------------------ start
  function countPixels(canvas) {
    try {
      var d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data, n = 0;
      for (var i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
      return n;
    } catch (e) { return -1; }
  }
  // Exercises hover, legend and zoom with synthetic events; only when the page is opened with
  // `#selftest` (the browser tests do), never for people.
  function interactionTest(charts) {
    var out = {};
    var line = charts.filter(function (c) { return c.kind === 'line'; })[0];
    if (!line) return out;
    var rect = line.overlay.getBoundingClientRect(), m = line.margin;
    var y = rect.top + line.H / 2;
    function at(type, fx, target, extra) {
      var ev = new MouseEvent(type, {
        bubbles: true, cancelable: true, button: 0, shiftKey: !!(extra && extra.shift),
        clientX: rect.left + m.l + (line.W - m.l - m.r) * fx, clientY: y
      });
      (target || line.overlay).dispatchEvent(ev);
    }
    at('mousemove', 0.5);
    out.tooltip = !tooltip.hidden && tooltip.querySelectorAll('.t-row').length > 0;
    at('mouseleave', 0.5);
    out.tooltipHides = tooltip.hidden;
    var button = line.legend.querySelector('button');
    var before = line.marks;
    button.click();
    out.legendHides = line.hidden[0] === true && button.getAttribute('aria-pressed') === 'false' &&
      (line.spec.series.length > 1 ? line.marks < before : line.marks === 0);
    button.click();
    out.legendShows = line.hidden[0] === false && line.marks === before;
    var axis = line.axis, full = axis.hi - axis.lo;
    at('mousedown', 0.25);
    at('mousemove', 0.5);
    at('mouseup', 0.5, window);
    out.zoom = axis.hi - axis.lo < full && axis.zoomed();
    out.linked = axis.charts.every(function (c) { return c.axis.lo === axis.lo; });
    var lo = axis.lo;
    at('mousedown', 0.5, null, { shift: true });
    at('mousemove', 0.3, null, { shift: true });
    at('mouseup', 0.3, window);
    out.pan = axis.lo > lo;
    line.overlay.dispatchEvent(new MouseEvent('dblclick', { bubbles: true }));
    out.reset = !axis.zoomed();
    return out;
  }
  function finish(charts) {
    report.ms = Math.round((performance.now() - T0) * 10) / 10;
    charts.forEach(function (c) {
      var id = c.host.getAttribute('data-chart');
      report.charts[id] = { kind: c.kind, series: c.spec.series.length, marks: c.marks, pixels: countPixels(c.canvas) };
    });
    report.checkMs = Math.round((performance.now() - T0) * 10) / 10;
    if (location.hash === '#selftest') {
      try { report.interaction = interactionTest(charts); } catch (e) { obs.errors.push('selftest: ' + e); }
    }
    report.sinceNavigation = Math.round(performance.now());
    report.alerts = obs.alerts;
    report.consoleErrors = obs.consoleErrors;
    report.resources = performance.getEntriesByType ? performance.getEntriesByType('resource').length : -1;
    report.images = document.images.length;
    report.scripts = document.scripts.length;
    report.done = true;
    document.getElementById('obs-selfcheck').textContent = JSON.stringify(report);
  }
  var charts = [];
  try {
    var data = JSON.parse(document.getElementById('obs-data').textContent);
    var axes = { epoch: new AxisView('epoch', data.axes.epoch), step: new AxisView('step', data.axes.step) };
    var specs = {};
    data.charts.forEach(function (c) { specs[c.id] = c; });
    var hosts = document.querySelectorAll('[data-chart]');
    for (var h = 0; h < hosts.length; h++) {
      var host = hosts[h], id = host.getAttribute('data-chart');
      var spec = specs[id === 'grad-heat' ? 'grad' : id];
      if (!spec) { host.appendChild(el('div', 'nodata', 'No data')); continue; }
      var axis = axes[spec.axis] || axes.step;
      if (id === 'grad-heat') charts.push(new HeatChart(host, spec, axis));
      else if (spec.kind === 'timeline') charts.push(new TimelineChart(host, spec, axis));
      else charts.push(new LineChart(host, spec, axis, spec.kind));
    }
    toolbar(axes.epoch);
    toolbar(axes.step);
    charts.forEach(function (c) { c.draw(); });
    var pending = null;
    window.addEventListener('resize', function () {
      clearTimeout(pending);
      pending = setTimeout(function () { charts.forEach(function (c) { c.draw(); }); }, 120);
    });
  } catch (e) {
    obs.errors.push(String(e && e.stack || e));
  }
  finish(charts);
})();
