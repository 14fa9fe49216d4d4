/* Jalali and Gregorian dates as day numbers, and a date picker for both, without a framework.
   The conversion is the well-known "jalaali" algorithm (Borkowski's 33-year breaks table). */
(function () {
  "use strict";
  var BREAKS = [-61, 9, 38, 199, 426, 686, 756, 818, 1111, 1181, 1210, 1635, 2060, 2097, 2192, 2262, 2324, 2394,
    2456, 3178];
  function div(a, b) { return ~~(a / b); }
  function mod(a, b) { return a - ~~(a / b) * b; }

  function jalCal(jy) {
    var gy = jy + 621, leapJ = -14, jp = BREAKS[0], jump = 0, jm, n, leap, leapG, march, i;
    if (jy < jp || jy >= BREAKS[BREAKS.length - 1]) { throw new RangeError("Jalali year out of range: " + jy); }
    for (i = 1; i < BREAKS.length; i += 1) {
      jm = BREAKS[i]; jump = jm - jp;
      if (jy < jm) { break; }
      leapJ = leapJ + div(jump, 33) * 8 + div(mod(jump, 33), 4);
      jp = jm;
    }
    n = jy - jp;
    leapJ = leapJ + div(n, 33) * 8 + div(mod(n, 33) + 3, 4);
    if (mod(jump, 33) === 4 && jump - n === 4) { leapJ += 1; }
    leapG = div(gy, 4) - div((div(gy, 100) + 1) * 3, 4) - 150;
    march = 20 + leapJ - leapG;
    if (jump - n < 6) { n = n - jump + div(jump + 4, 33) * 33; }
    leap = mod(mod(n + 1, 33) - 1, 4);
    if (leap === -1) { leap = 4; }
    return { leap: leap, gy: gy, march: march };
  }
  function g2d(gy, gm, gd) {
    var d = div((gy + div(gm - 8, 6) + 100100) * 1461, 4) + div(153 * mod(gm + 9, 12) + 2, 5) + gd - 34840408;
    return d - div(div(gy + 100100 + div(gm - 8, 6), 100) * 3, 4) + 752;
  }
  function d2g(jdn) {
    var j = 4 * jdn + 139361631, i, gd, gm, gy;
    j = j + div(div(4 * jdn + 183187720, 146097) * 3, 4) * 4 - 3908;
    i = div(mod(j, 1461), 4) * 5 + 308;
    gd = div(mod(i, 153), 5) + 1;
    gm = mod(div(i, 153), 12) + 1;
    gy = div(j, 1461) - 100100 + div(8 - gm, 6);
    return [gy, gm, gd];
  }
  function j2d(jy, jm, jd) {
    var r = jalCal(jy);
    return g2d(r.gy, 3, r.march) + (jm - 1) * 31 - div(jm, 7) * (jm - 7) + jd - 1;
  }
  function d2j(jdn) {
    var gy = d2g(jdn)[0], jy = gy - 621, r = jalCal(jy), k = jdn - g2d(gy, 3, r.march), jm, jd;
    if (k >= 0) {
      if (k <= 185) { return [jy, 1 + div(k, 31), mod(k, 31) + 1]; }
      k -= 186;
    } else {
      jy -= 1; k += 179;
      if (r.leap === 1) { k += 1; }
    }
    jm = 7 + div(k, 30); jd = mod(k, 30) + 1;
    return [jy, jm, jd];
  }
  function monthLength(calendar, y, m) {
    if (calendar === "jalali") { return m <= 6 ? 31 : m <= 11 ? 30 : (jalCal(y).leap === 0 ? 30 : 29); }
    return new Date(Date.UTC(y, m, 0)).getUTCDate();
  }
  function toDay(calendar, y, m, d) { return calendar === "jalali" ? j2d(y, m, d) : g2d(y, m, d); }
  function fromDay(calendar, jdn) { return calendar === "jalali" ? d2j(jdn) : d2g(jdn); }
  function today() { var n = new Date(); return g2d(n.getFullYear(), n.getMonth() + 1, n.getDate()); }

  var FA_DIGITS = "۰۱۲۳۴۵۶۷۸۹";
  function faDigits(text) { return String(text).replace(/[0-9]/g, function (c) { return FA_DIGITS[+c]; }); }
  function asciiDigits(text) {
    return String(text).replace(/[۰-۹]/g, function (c) { return String(FA_DIGITS.indexOf(c)); })
      .replace(/[٠-٩]/g, function (c) { return String(c.charCodeAt(0) - 0x660); });
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  /* Written as the report filters read them: 1403/05/01 (Jalali) or 2024-07-22 (Gregorian). */
  function format(calendar, ymd, lang) {
    var sep = calendar === "jalali" ? "/" : "-";
    var text = ymd[0] + sep + pad(ymd[1]) + sep + pad(ymd[2]);
    return lang === "fa" ? faDigits(text) : text;
  }
  function parse(calendar, text) {
    var m = /^\s*(\d{4})\s*[\/.\-]\s*(\d{1,2})\s*[\/.\-]\s*(\d{1,2})\s*$/.exec(asciiDigits(text || ""));
    if (!m) { return null; }
    var y = +m[1], mo = +m[2], d = +m[3];
    if (mo < 1 || mo > 12 || d < 1) { return null; }
    try { if (d > monthLength(calendar, y, mo)) { return null; } } catch (e) { return null; }
    return toDay(calendar, y, mo, d);
  }

  /* The picker: one popup per page, attached to the input being edited. */
  function DatePicker(form) {
    this.form = form;
    this.lang = form.getAttribute("data-lang") || "fa";
    this.box = document.createElement("div");
    this.box.className = "datepicker";
    this.box.hidden = true;
    this.box.setAttribute("role", "dialog");
    document.body.appendChild(this.box);
    this.input = null;
    var self = this;
    this.box.addEventListener("click", function (event) { self.onClick(event); });
    document.addEventListener("mousedown", function (event) {
      if (!self.box.hidden && event.target !== self.input && !self.box.contains(event.target)) { self.close(); }
    });
    document.addEventListener("keydown", function (event) { if (event.key === "Escape") { self.close(); } });
  }
  DatePicker.prototype.calendar = function () {
    var select = this.form.querySelector("#calendar");
    return select && select.value === "gregorian" ? "gregorian" : "jalali";
  };
  DatePicker.prototype.open = function (input) {
    var cal = this.calendar(), chosen = parse(cal, input.value), ymd = fromDay(cal, chosen === null ? today() : chosen);
    this.input = input;
    this.year = ymd[0]; this.month = ymd[1];
    this.render();
    var rect = input.getBoundingClientRect();
    this.box.style.top = (window.scrollY + rect.bottom + 4) + "px";
    var left = window.scrollX + (document.dir === "rtl" ? rect.right - 272 : rect.left);
    this.box.style.left = Math.max(4, left) + "px";
    this.box.hidden = false;
  };
  DatePicker.prototype.close = function () { this.box.hidden = true; this.input = null; };
  DatePicker.prototype.text = function (value) { return this.lang === "fa" ? faDigits(value) : String(value); };
  DatePicker.prototype.render = function () {
    var cal = this.calendar(), form = this.form;
    var names = (form.getAttribute("data-months-" + cal) || "").split("|");
    var weekdays = (form.getAttribute("data-weekdays-" + cal) || "").split("|");
    var first = toDay(cal, this.year, this.month, 1), length = monthLength(cal, this.year, this.month);
    // Column of the first day: a Jalali week starts on Saturday, a Gregorian one on Monday (day number 0 is a Monday).
    var offset = cal === "jalali" ? mod(first + 2, 7) : mod(first, 7);
    var chosen = this.input ? parse(cal, this.input.value) : null, now = today();
    this.box.textContent = "";
    var head = document.createElement("div");
    head.className = "head";
    var rtl = document.dir === "rtl";
    head.appendChild(this.button(rtl ? "›" : "‹", "prev", form.getAttribute("data-msg-prev")));
    var title = document.createElement("strong");
    title.textContent = names[this.month - 1] + " " + this.text(this.year);
    head.appendChild(title);
    head.appendChild(this.button(rtl ? "‹" : "›", "next", form.getAttribute("data-msg-next")));
    this.box.appendChild(head);
    var table = document.createElement("table"), row = document.createElement("tr"), i;
    weekdays.forEach(function (w) { var th = document.createElement("th"); th.textContent = w; row.appendChild(th); });
    table.appendChild(row);
    row = document.createElement("tr");
    for (i = 0; i < offset; i += 1) { row.appendChild(document.createElement("td")); }
    for (i = 1; i <= length; i += 1) {
      var td = document.createElement("td"), b = this.button(this.text(i), "day", "");
      b.setAttribute("data-day", String(first + i - 1));
      if (first + i - 1 === chosen) { b.className = "chosen"; }
      if (first + i - 1 === now) { b.className += " today"; }
      td.appendChild(b); row.appendChild(td);
      if ((offset + i) % 7 === 0) { table.appendChild(row); row = document.createElement("tr"); }
    }
    if (row.childNodes.length) { table.appendChild(row); }
    this.box.appendChild(table);
    var foot = document.createElement("div");
    foot.className = "foot";
    foot.appendChild(this.button(form.getAttribute("data-msg-today") || "", "today", ""));
    this.box.appendChild(foot);
  };
  DatePicker.prototype.button = function (label, action, title) {
    var b = document.createElement("button");
    b.type = "button"; b.textContent = label; b.setAttribute("data-action", action);
    if (title) { b.title = title; b.setAttribute("aria-label", title); }
    return b;
  };
  DatePicker.prototype.onClick = function (event) {
    var target = event.target.closest("button");
    if (!target) { return; }
    var action = target.getAttribute("data-action"), cal = this.calendar();
    if (action === "prev" || action === "next") {
      var index = this.year * 12 + this.month - 1 + (action === "next" ? 1 : -1);
      this.year = div(index, 12); this.month = mod(index, 12) + 1;
      this.render();
    } else if (action === "day" || action === "today") {
      var day = action === "today" ? today() : +target.getAttribute("data-day");
      this.input.value = format(cal, fromDay(cal, day), this.lang);
      this.input.dispatchEvent(new Event("change", { bubbles: true }));
      this.close();
    }
  };

  window.CalltrailCalendar = {
    toDay: toDay, fromDay: fromDay, parse: parse, format: format, today: today, monthLength: monthLength,
    faDigits: faDigits, DatePicker: DatePicker
  };
}());
