// margay status page: follows the counters the server pushes once a second on /api/events
// (server-sent events), or polls /api/status once a second where EventSource is missing or
// the stream cannot be opened; fills the table and draws up to the last minute of active
// connections and requests per second. `?source=polling` skips the stream.
"use strict";

(() => {
  const HISTORY = 61; // samples kept, one a second: the last minute
  const WIDTH = 300; // the charts' viewBox is 300 x 100
  const HEIGHT = 100;

  const $ = (id) => document.getElementById(id);
  const integer = new Intl.NumberFormat("en-US");
  const oneDecimal = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });

  const charts = {
    active: { svg: $("active-chart"), now: $("active-now"), values: [], format: (v) => integer.format(v) },
    rps: { svg: $("rps-chart"), now: $("rps-now"), values: [], format: (v) => oneDecimal.format(v) },
  };

  function duration(seconds) {
    const s = Math.floor(seconds);
    const parts = [[Math.floor(s / 86400), "d"], [Math.floor(s / 3600) % 24, "h"], [Math.floor(s / 60) % 60, "min"], [s % 60, "s"]];
    const first = parts.findIndex(([n]) => n > 0);
    return parts.slice(first < 0 ? 3 : first).map(([n, unit]) => `${n} ${unit}`).join(" ");
  }

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return i === 0 ? `${Math.round(n)} B` : `${oneDecimal.format(n)} ${units[i]}`;
  }

  // A round number at least 10% above `value`, for the top of a chart's axis.
  function axisTop(value) {
    const wanted = Math.max(value * 1.1, 1);
    let step = 1;
    for (;;) {
      for (const m of [1, 1.5, 2, 3, 4, 5, 6, 8]) {
        if (m * step >= wanted) return m * step;
      }
      step *= 10;
    }
  }

  // Draws the samples so far across the whole width, the newest at the right edge.
  function draw(chart, value) {
    chart.values.push(value);
    if (chart.values.length > HISTORY) chart.values.shift();
    const peak = Math.max(...chart.values);
    const top = axisTop(peak);
    const span = Math.max(chart.values.length - 1, 1); // seconds shown
    const x = (i) => ((i / span) * WIDTH).toFixed(1);
    const y = (v) => (HEIGHT - (v / top) * HEIGHT).toFixed(1);
    const points = chart.values.length === 1 ? [`0,${y(value)}`, `${WIDTH},${y(value)}`] : chart.values.map((v, i) => `${x(i)},${y(v)}`);
    const line = `M${points.join(" L")}`;
    const figure = chart.svg.parentElement;
    chart.svg.querySelector(".line").setAttribute("d", line);
    chart.svg.querySelector(".area").setAttribute("d", `${line} L${WIDTH},${HEIGHT} L0,${HEIGHT} Z`);
    chart.now.textContent = chart.format(value);
    figure.querySelector(".since").textContent = span >= 60 ? "1 min ago" : `${span} s ago`;
    figure.querySelector(".max").textContent = `peak ${chart.format(peak)} · axis 0–${integer.format(top)}`;
  }

  function show(report) {
    const cells = {
      uptime: duration(report.uptime_seconds),
      accepted: integer.format(report.accepted),
      handled: integer.format(report.handled),
      active: integer.format(report.active),
      reading: integer.format(report.reading),
      writing: integer.format(report.writing),
      idle: integer.format(report.idle),
      requests: integer.format(report.requests),
      requests_per_second: oneDecimal.format(report.requests_per_second),
      bytes_per_second: `${bytes(report.bytes_per_second)}/s`,
      bytes_sent: bytes(report.bytes_sent),
    };
    for (const [id, text] of Object.entries(cells)) $(id).textContent = text;
    draw(charts.active, report.active);
    draw(charts.rps, report.requests_per_second);
  }

  // Which source feeds the page ("events" or "polling") and how many reports it has shown,
  // kept on the state line for people and for the browser check.
  function setState(live, text, source) {
    const state = $("state");
    state.className = `state ${live ? "live" : "down"}`;
    state.textContent = text;
    state.dataset.source = source;
  }

  let reports = 0;

  function report(data, source) {
    show(data);
    reports += 1;
    $("state").dataset.reports = String(reports);
    const how = source === "events" ? "pushed by /api/events" : "polled from /api/status";
    setState(true, `Live: ${how}, updated ${new Date().toLocaleTimeString()}`, source);
  }

  async function poll() {
    try {
      const response = await fetch("/api/status", { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      report(await response.json(), "polling");
    } catch (error) {
      setState(false, `Cannot read /api/status (${error.message}); retrying every second.`, "polling");
    }
    setTimeout(poll, 1000);
  }

  // The stream, falling back to polling when it fails before its first event or is closed
  // for good (a 404, another content type). A stream that drops later reconnects by itself.
  function follow() {
    const events = new EventSource("/api/events");
    let heard = false;
    events.onmessage = (message) => {
      heard = true;
      report(JSON.parse(message.data), "events");
    };
    events.onerror = () => {
      if (!heard || events.readyState === EventSource.CLOSED) {
        events.close();
        poll();
      } else {
        setState(false, "The event stream dropped; reconnecting…", "events");
      }
    };
  }

  const forcePolling = new URLSearchParams(location.search).get("source") === "polling";
  if ("EventSource" in window && !forcePolling) {
    follow();
  } else {
    poll();
  }
})();
