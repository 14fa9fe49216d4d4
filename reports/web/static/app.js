/* Calltrail web: the report form's behaviour and the transfer-chain dialog. Plain JS, no framework;
   every part is an enhancement, the form works without it. */
(function () {
  "use strict";
  var C = window.CalltrailCalendar;

  function fetchJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      });
  }
  function option(value, label, selected) {
    var o = document.createElement("option");
    o.value = value; o.textContent = label; o.selected = !!selected;
    return o;
  }

  /* Period kind: show the year/season/month pickers or the from/to dates. */
  function setupPeriod(form) {
    var period = form.querySelector("#period");
    if (!period) { return; }
    form.classList.add("js");
    function update() { form.setAttribute("data-period", period.value); }
    period.addEventListener("change", update);
    update();
  }

  /* Calendar switch: the year, month and season lists, and typed dates, follow the calendar. */
  function setupCalendar(form) {
    var select = form.querySelector("#calendar");
    if (!select) { return; }
    var lang = form.getAttribute("data-lang");
    var previous = select.value;
    select.addEventListener("change", function () {
      var cal = select.value;
      var year = form.querySelector("#year"), month = form.querySelector("#month"), season = form.querySelector("#season");
      var yearIndex = year.selectedIndex;
      var years = (form.getAttribute("data-years-" + cal) || "").split(",");
      year.textContent = "";
      years.forEach(function (y, i) { year.appendChild(option(y, lang === "fa" ? C.faDigits(y) : y, i === yearIndex)); });
      [[month, "months"], [season, "seasons"]].forEach(function (pair) {
        var names = (form.getAttribute("data-" + pair[1] + "-" + cal) || "").split("|");
        Array.prototype.forEach.call(pair[0].options, function (o, i) { o.textContent = names[i]; });
      });
      ["#from", "#to"].forEach(function (id) {
        var input = form.querySelector(id), day = C.parse(previous, input.value);
        if (day !== null) { input.value = C.format(cal, C.fromDay(cal, day), lang); }
      });
      previous = cal;
    });
  }

  /* Branch then system: the system list follows the chosen branch. */
  function setupSystems(form) {
    var branch = form.querySelector("#branch"), system = form.querySelector("#system");
    if (!branch || !system) { return; }
    branch.addEventListener("change", function () {
      var first = system.options[0], keep = system.value;
      fetchJSON("/api/systems?branch=" + encodeURIComponent(branch.value)).then(function (data) {
        system.textContent = "";
        system.appendChild(option("", first.textContent, true));
        data.systems.forEach(function (s) { system.appendChild(option(s.name, s.title, s.name === keep)); });
        system.setAttribute("data-loaded-branch", branch.value);
      }).catch(function () { /* keep the server-rendered list */ });
    });
  }

  /* Agent: search users by name, pick one to fill in the user name. */
  function setupAgent(form) {
    var input = form.querySelector("#agent"), list = form.querySelector("#agent-results");
    var search = form.querySelector("#agent-search"), clear = form.querySelector("#agent-clear");
    if (!input || !list) { return; }
    var timer = null, asked = 0;
    function run() {
      clearTimeout(timer);
      var q = input.value.trim(), mine = ++asked;
      if (!q) { list.hidden = true; return; }
      fetchJSON("/api/users?q=" + encodeURIComponent(q)).then(function (data) {
        /* Only the newest search may fill the list: an older, slower answer is dropped. */
        if (mine !== asked) { return; }
        list.textContent = "";
        if (!data.users.length) {
          var none = document.createElement("li");
          none.textContent = form.getAttribute("data-msg-none");
          none.className = "muted";
          list.appendChild(none);
        }
        data.users.forEach(function (u) {
          var li = document.createElement("li"), name = document.createElement("span"), uname = document.createElement("span");
          li.setAttribute("role", "option"); li.tabIndex = 0; li.setAttribute("data-username", u.username);
          name.textContent = u.full_name || u.username; uname.textContent = u.username; uname.className = "uname";
          li.appendChild(name); li.appendChild(uname); list.appendChild(li);
        });
        list.hidden = false;
      }).catch(function () { list.hidden = true; });
    }
    function choose(li) {
      if (!li || !li.getAttribute("data-username")) { return; }
      input.value = li.getAttribute("data-username");
      list.hidden = true;
    }
    search.addEventListener("click", run);
    clear.addEventListener("click", function () { input.value = ""; list.hidden = true; input.focus(); });
    input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(run, 250); });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); run(); }
      if (event.key === "ArrowDown" && !list.hidden && list.firstChild) { event.preventDefault(); list.firstChild.focus(); }
    });
    list.addEventListener("click", function (event) { choose(event.target.closest("li")); });
    list.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); choose(event.target.closest("li")); }
    });
  }

  function setupDates(form) {
    var inputs = form.querySelectorAll(".date-input");
    if (!inputs.length) { return; }
    var picker = new C.DatePicker(form);
    Array.prototype.forEach.call(inputs, function (input) {
      input.addEventListener("focus", function () { picker.open(input); });
      input.addEventListener("click", function () { picker.open(input); });
    });
  }

  /* A click on a call (a row of the shown report) opens its transfer chain in a dialog. */
  function setupChains() {
    var dialog = document.getElementById("chain-dialog"), output = document.getElementById("report-output");
    if (!dialog || !output) { return; }
    var body = dialog.querySelector(".chain-body");
    dialog.querySelector(".close").addEventListener("click", function () { dialog.close(); });
    Array.prototype.forEach.call(output.querySelectorAll("tr[data-call]"), function (row) {
      row.tabIndex = 0;
      row.title = dialog.getAttribute("aria-label");
    });
    function open(row) {
      var url = "/calls/" + encodeURIComponent(row.getAttribute("data-call")) + "?fragment=1";
      // The row's own system: a call id alone may exist on two telephone systems.
      var system = row.getAttribute("data-system") || output.getAttribute("data-system");
      if (system) { url += "&system=" + encodeURIComponent(system); }
      body.textContent = dialog.getAttribute("data-loading");
      if (!dialog.open) { dialog.showModal(); }
      fetch(url, { credentials: "same-origin" }).then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      }).then(function (html) {
        // Our own server-rendered, escaped fragment; the CSP keeps any script in it from running.
        body.innerHTML = html;
      }).catch(function () { body.textContent = dialog.getAttribute("data-failed"); });
    }
    output.addEventListener("click", function (event) {
      var row = event.target.closest("tr[data-call]");
      // Identity links inside a row keep working as links.
      if (row && !event.target.closest("a")) { open(row); }
    });
    output.addEventListener("keydown", function (event) {
      var row = event.target.closest("tr[data-call]");
      if (row && event.key === "Enter") { event.preventDefault(); open(row); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("report-form");
    if (form) {
      setupPeriod(form); setupCalendar(form); setupSystems(form); setupAgent(form); setupDates(form);
    }
    setupChains();
  });
}());
