/* clientstats widget: a client's live donation figures in any page.
 *
 * Include it with <script src=".../widget.js" async></script> and mark each place with
 * <div data-clientstats="CLIENT" data-locale="de"></div>. Options are data attributes
 * (or, on the widget's own page for iframes, query parameters): figures, color,
 * background, text, compact, title, poll. The widget renders into a shadow root, so the
 * host page's styles and its own do not meet. It fetches from this script's origin only,
 * takes the figures from the event stream and polls with If-None-Match where there is no
 * EventSource. Every value is set as text (textContent), never parsed as HTML.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script) return;
  var BASE = new URL(".", script.src);
  var CSS_URL = new URL("widget.css?v=__CSS_VERSION__", BASE).href;
  var FIGURES = ["progress", "open", "projects", "client_donations", "matched", "pool"];
  var TEXTS = {
    de: {
      donated: "gespendet", of: "von", needed: "benötigt", open: "Noch offen",
      projects: "Projekte", client_donations: "Über unsere Seite", in: "in",
      matched: "Aufgestockt", pool: "Pool-Guthaben", live: "Live", updated: "Stand",
      loading: "Lädt …", unavailable: "Die Zahlen sind gerade nicht verfügbar.",
      progress: "Fortschritt", donations: "Spenden", label: "Spendenstand"
    },
    en: {
      donated: "donated", of: "of", needed: "needed", open: "Still needed",
      projects: "Projects", client_donations: "Through our page", in: "in",
      matched: "Matched", pool: "Pool balance", live: "Live", updated: "As of",
      loading: "Loading …", unavailable: "The figures are not available right now.",
      progress: "Progress", donations: "donations", label: "Donation progress"
    }
  };
  var DARK = "#1f2937";
  var LIGHT = "#ffffff";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function options(host) {
    var found = {};
    var names = ["locale", "figures", "color", "background", "text", "compact", "title", "poll"];
    names.forEach(function (name) {
      var value = host.getAttribute("data-" + name);
      if (value !== null) found[name] = value;
    });
    if (host.hasAttribute("data-options-from-url")) {
      var query = new URLSearchParams(window.location.search);
      names.forEach(function (name) {
        if (name !== "locale" && query.has(name)) found[name] = query.get(name);
      });
    }
    return found;
  }

  // Colours: #rgb or #rrggbb only, so no value can carry anything but a colour.
  function hexColor(value) {
    if (!value || !/^#?([0-9a-f]{3}|[0-9a-f]{6})$/i.test(value)) return null;
    var hex = value.replace("#", "");
    if (hex.length === 3) hex = hex.replace(/./g, "$&$&");
    return "#" + hex.toLowerCase();
  }

  function luminance(hex) {
    var channels = [1, 3, 5].map(function (i) {
      var c = parseInt(hex.substr(i, 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2];
  }

  function contrast(a, b) {
    var la = luminance(a), lb = luminance(b);
    return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
  }

  // Text stays readable (WCAG AA, 4.5:1) whatever colours a page asks for.
  function palette(opts) {
    var background = hexColor(opts.background) || LIGHT;
    var text = hexColor(opts.text);
    if (!text || contrast(text, background) < 4.5) {
      // The house colours where they are readable, else black or white, whichever is.
      text = [DARK, LIGHT, "#000000"].filter(function (candidate) {
        return contrast(candidate, background) >= 4.5;
      })[0] || LIGHT;
    }
    var muted = !opts.text && !opts.background ? "#4b5563" : text;
    return { background: background, text: text, muted: muted, accent: hexColor(opts.color) };
  }

  function Widget(host) {
    var opts = options(host);
    var locale = opts.locale === "en" ? "en" : "de";
    var texts = TEXTS[locale];
    var client = host.getAttribute("data-clientstats");
    var wanted = (opts.figures || FIGURES.join(",")).split(",").map(function (s) { return s.trim(); });
    var money = new Intl.NumberFormat(locale, { style: "currency", currency: "EUR" });
    var count = new Intl.NumberFormat(locale);
    var share = new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 0 });
    var clock = new Intl.DateTimeFormat(locale, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    var path = locale + "/api_v4/clients/" + encodeURIComponent(client) + "/project_statistics";
    var statsUrl = new URL(path, BASE).href;
    var streamUrl = new URL(path + "/stream", BASE).href;
    var pollSeconds = Math.min(3600, Math.max(1, parseInt(opts.poll, 10) || 30));
    var etag = null;
    var parts = {};

    // Amounts as exact decimal strings: Intl formats them without a detour through floats.
    function euros(cents) {
      var digits = String(Math.abs(cents));
      while (digits.length < 3) digits = "0" + digits;
      var decimal = (cents < 0 ? "-" : "") + digits.slice(0, -2) + "." + digits.slice(-2);
      return money.format(decimal);
    }

    function build() {
      var root = host.shadowRoot || host.attachShadow({ mode: "open" });
      var link = el("link");
      link.rel = "stylesheet";
      link.href = CSS_URL;
      var colors = palette(opts);
      var card = el("section", "cs-card" + (/^(1|true|yes)$/i.test(opts.compact || "") ? " cs-compact" : ""));
      card.style.setProperty("--cs-background", colors.background);
      card.style.setProperty("--cs-text", colors.text);
      card.style.setProperty("--cs-muted", colors.muted);
      if (colors.accent) card.style.setProperty("--cs-accent", colors.accent);
      var title = opts.title;
      card.setAttribute("aria-label", title || texts.label);
      if (title) card.appendChild(el("h2", "cs-title", title));
      var figures = el("div", "cs-figures");
      figures.setAttribute("aria-live", "polite");
      if (wanted.indexOf("progress") >= 0) figures.appendChild(progress());
      var list = el("dl", "cs-list");
      FIGURES.slice(1).forEach(function (name) {
        if (wanted.indexOf(name) < 0) return;
        var row = el("div", "cs-row");
        row.appendChild(el("dt", null, texts[name]));
        parts[name] = el("dd", null, "–");
        row.appendChild(parts[name]);
        list.appendChild(row);
      });
      if (list.childNodes.length) figures.appendChild(list);
      card.appendChild(figures);
      parts.status = el("p", "cs-status", texts.loading);
      card.appendChild(parts.status);
      root.replaceChildren(link, card);
    }

    function progress() {
      var box = el("div", "cs-progress");
      var headline = el("p", "cs-headline");
      parts.donated = el("strong", "cs-donated", "–");
      headline.appendChild(parts.donated);
      headline.appendChild(document.createTextNode(" " + texts.donated));
      box.appendChild(headline);
      parts.requested = el("p", "cs-requested");
      box.appendChild(parts.requested);
      var bar = el("div", "cs-bar");
      bar.setAttribute("role", "progressbar");
      bar.setAttribute("aria-label", texts.progress);
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", "100");
      parts.fill = el("div", "cs-fill");
      bar.appendChild(parts.fill);
      parts.bar = bar;
      var row = el("div", "cs-barrow");
      row.appendChild(bar);
      parts.percent = el("span", "cs-percent", "");
      row.appendChild(parts.percent);
      box.appendChild(row);
      return box;
    }

    function set(name, text) {
      var node = parts[name];
      if (node && node.textContent !== text) node.textContent = text;
    }

    function show(stats) {
      var donated = stats.donated_amount_in_cents;
      var requested = stats.requested_amount_in_cents;
      var percent = requested > 0 ? Math.min(100, Math.floor((donated * 100) / requested)) : 0;
      set("donated", euros(donated));
      set("requested", texts.of + " " + euros(requested) + " " + texts.needed);
      set("percent", share.format(percent / 100));
      if (parts.bar) {
        parts.fill.style.width = percent + "%";
        parts.bar.setAttribute("aria-valuenow", String(percent));
        parts.bar.setAttribute("aria-valuetext", euros(donated) + " " + texts.of + " " + euros(requested));
      }
      set("open", euros(stats.open_amount_in_cents));
      set("projects", count.format(stats.projects_count));
      set("client_donations", euros(stats.client_donated_amount_in_cents) + " " + texts.in + " " +
        count.format(stats.client_donations_count) + " " + texts.donations);
      set("matched", euros(stats.client_matched_amount_in_cents));
      set("pool", euros(stats.pool_balance_in_cents));
      set("status", texts.updated + " " + clock.format(new Date()));
    }

    function unavailable() {
      set("status", texts.unavailable);
    }

    function poll() {
      var headers = etag ? { "If-None-Match": etag } : {};
      fetch(statsUrl, { headers: headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" })
        .then(function (response) {
          if (response.status === 200) {
            etag = response.headers.get("ETag");
            return response.json().then(show);
          }
          if (response.status !== 304) unavailable();
        })
        .catch(unavailable)
        .then(function () { window.setTimeout(poll, pollSeconds * 1000); });
    }

    function listen() {
      var source = new EventSource(streamUrl);
      source.addEventListener("statistics", function (event) {
        show(JSON.parse(event.data));
      });
      source.addEventListener("error", function () {
        // A network error reconnects by itself; a refusal (404, 503, ...) closes for good.
        if (source.readyState === EventSource.CLOSED) poll();
      });
    }

    build();
    if (typeof window.EventSource === "function") listen();
    else poll();
  }

  function start() {
    var hosts = document.querySelectorAll("[data-clientstats]");
    Array.prototype.forEach.call(hosts, function (host) {
      if (host.clientstatsWidget) return;
      host.clientstatsWidget = true;
      Widget(host);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
