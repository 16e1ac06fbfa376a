// The cohort builder: the form's state is the page's URL (the API's parameters, which
// are `cxr cohort`'s flags), every change asks /api/cohort and draws the answer.
"use strict";

const form = document.getElementById("cohort");
const $ = (id) => document.getElementById(id);
let findings = [];
let datasets = [];
let answer = null;
let asked = 0;

// Elements built with text, never with HTML from data.
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
  return node;
}

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const number = (n) => (n === null || n === undefined ? "" : Number(n).toLocaleString("en-US"));

async function getJson(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// The form as the API's parameters.
function parameters() {
  const p = new URLSearchParams();
  const chosen = [...form.querySelectorAll("input[name=dataset]:checked")].map((c) => c.value);
  if (chosen.length && chosen.length < datasets.length) p.set("dataset", chosen.join(","));
  for (const f of findings) {
    const choice = form.querySelector(`select[data-finding="${f}"]`).value;
    if (choice) p.append(choice, f);
  }
  if (form.elements["no-finding"].checked) p.set("no-finding", "true");
  const min = $("age-min").value.trim();
  const max = $("age-max").value.trim();
  if (min || max) p.set("age", `${min}..${max}`);
  for (const name of ["sex", "view", "split", "min-studies", "source", "uncertain"]) {
    const v = form.elements[name].value.trim();
    if (v) p.set(name, v);
  }
  if (form.elements["first-study"].checked) p.set("first-study", "true");
  return p;
}

// The URL's parameters into the form (a permalink).
// Names are matched as the API matches them (without regard to case); a name the page
// does not know is kept in `unknown` and said, never dropped silently.
let unknown = [];
// The parameters a cohort takes (src/serve/cohorts.rs).
const PARAMETERS = ["dataset", "with", "any", "without", "no-finding", "age", "sex", "view",
  "split", "first-study", "min-studies", "source", "uncertain"];
// The ones that take several values, each given once or repeated.
const LISTS = ["dataset", "with", "any", "without", "source"];
function restore(p) {
  unknown = [];
  const lower = (v) => v.trim().toLowerCase();
  const asked = p.getAll("dataset").flatMap((d) => d.split(",")).map(lower).filter(Boolean);
  const chosen = asked.length ? asked : datasets;
  for (const c of form.querySelectorAll("input[name=dataset]")) c.checked = chosen.includes(c.value);
  unknown.push(...asked.filter((d) => !datasets.includes(d)).map((d) => `dataset ${d}`));
  for (const f of findings) form.querySelector(`select[data-finding="${f}"]`).value = "";
  const picked = {};
  for (const choice of ["with", "any", "without"]) {
    // An empty value is not given, as the API reads it (`with=` from a form).
    for (const name of p.getAll(choice).filter((n) => n.trim())) {
      const f = findings.find((x) => lower(x) === lower(name).replace(/ /g, "_"));
      if (!f) unknown.push(`finding ${name}`);
      // One choice per finding on the page: a link giving two is said, not narrowed.
      else if (picked[f] && picked[f] !== choice) unknown.push(`${f} both ${picked[f]} and ${choice}`);
      else {
        picked[f] = choice;
        form.querySelector(`select[data-finding="${f}"]`).value = choice;
      }
    }
  }
  // Switches and names read as the API reads them: `first-study`, `=1`, `=true`,
  // `=on` set it; anything else the API would refuse is said.
  for (const name of new Set(p.keys())) {
    if (!PARAMETERS.includes(name)) unknown.push(`parameter ${name}`);
    // The API refuses a choice given twice (it has one value); lists add up.
    else if (!LISTS.includes(name) && p.getAll(name).length > 1) unknown.push(`${name} given ${p.getAll(name).length} times`);
  }
  const on = (name) => {
    if (!p.has(name)) return false;
    const v = lower(p.get(name));
    if (["", "true", "1", "on"].includes(v)) return true;
    if (!["false", "0", "off"].includes(v)) unknown.push(`${name}=${p.get(name)}`);
    return false;
  };
  form.elements["no-finding"].checked = on("no-finding");
  form.elements["first-study"].checked = on("first-study");
  // An age the API would refuse (`40`, `abc`) is said, not read as another range.
  const age = (p.get("age") || "..").trim();
  const range = age.match(/^(\d*)\s*\.\.\s*(\d*)$/);
  // `age=..` given bounds nothing: the API refuses it.
  if (!range || (p.has("age") && p.get("age").trim() && !range[1] && !range[2])) unknown.push(`age ${age}`);
  $("age-min").value = range ? range[1] : "";
  $("age-max").value = range ? range[2] : "";
  // The words the API takes for a choice besides the options' own values.
  const aliases = { sex: { male: "M", female: "F" }, uncertain: { nan: "" } };
  for (const name of ["sex", "view", "uncertain"]) {
    const given = (p.get(name) || "").trim();
    const v = aliases[name]?.[lower(given)] ?? given;
    const option = [...form.elements[name].options].find((o) => lower(o.value) === lower(v));
    form.elements[name].value = option ? option.value : "";
    if (given && !option) unknown.push(`${name} ${given}`);
  }
  // `+5` is the API's 5; a number field would take it as empty.
  const studies = (p.get("min-studies") || "").trim();
  const given = { split: (p.get("split") || "").trim(), "min-studies": studies.replace(/^\+(?=\d)/, "") };
  for (const [name, value] of Object.entries(given)) {
    form.elements[name].value = value;
    // A value the field cannot hold is said, not dropped.
    if (value && form.elements[name].value !== value) unknown.push(`${name} ${value}`);
  }
  form.elements.source.value = p.getAll("source").map((v) => v.trim()).filter(Boolean).join(",");
  if (studies && !/^\+?\d+$/.test(studies)) unknown.push(`min-studies ${studies}`);
  unknown = [...new Set(unknown)];
}

let timer = null;
function changed() {
  clearTimeout(timer);
  timer = setTimeout(update, 150);
}

async function update() {
  const p = parameters();
  const query = p.toString();
  // A link with what the page cannot hold keeps its address (a reload says it again)
  // until the picks change.
  if (!unknown.length) history.replaceState(null, "", (query ? `/?${query}` : "/") + heatmapFragment());
  for (const [id, path] of [["manifest-parquet", "manifest.parquet"], ["manifest-csv", "manifest.csv"], ["saved-query", "cohort.sql"]]) {
    $(id).href = `/api/${path}${query ? "?" + query : ""}`;
  }
  $("permalink").href = location.href;
  const mine = ++asked;
  const chosen = form.querySelectorAll("input[name=dataset]:checked").length;
  const problem = unknown.length ? `Not known here: ${unknown.join(", ")}.`
    : chosen === 0 ? "Choose at least one dataset." : null;
  unknown = [];
  if (problem) {
    failed(problem, query);
    return;
  }
  document.body.dataset.state = "loading";
  $("status").textContent = "Counting…";
  const started = performance.now();
  try {
    const result = await getJson(`/api/cohort?${query}`);
    if (mine !== asked) return;
    answer = result;
    draw();
    setDownloads(true);
    $("error").hidden = true;
    const images = result.counts.reduce((sum, row) => sum + row.images, 0);
    $("status").textContent = `${number(images)} images · answered in ${Math.round(performance.now() - started)} ms`;
    document.body.dataset.query = query;
    document.body.dataset.state = "ready";
  } catch (e) {
    if (mine !== asked) return;
    failed(e.message, query);
  }
}

// Says what is wrong; the downloads are off and the last cohort's numbers gone until
// the cohort is counted again (beside the error they read as this cohort's).
function failed(message, query) {
  for (const id of ["prevalence"]) $(id).tHead.replaceChildren();
  for (const id of ["counts", "prevalence"]) $(id).tBodies[0].replaceChildren();
  for (const id of ["heatmap", "ages", "patients", "command", "sql"]) $(id).replaceChildren();
  $("error").textContent = message;
  $("error").hidden = false;
  $("status").textContent = "The cohort could not be counted.";
  setDownloads(false);
  document.body.dataset.query = query;
  document.body.dataset.state = "error";
}

// A download that is off has no address: the keyboard cannot follow it either (it
// would have downloaded the last cohort that was counted, not the one asked for).
function setDownloads(on) {
  for (const id of ["manifest-parquet", "manifest-csv", "saved-query"]) {
    if (on) $(id).removeAttribute("aria-disabled");
    else {
      $(id).setAttribute("aria-disabled", "true");
      $(id).removeAttribute("href");
    }
  }
}

function draw() {
  drawCounts();
  drawPrevalence();
  drawHeatmapChoices();
  drawHeatmap();
  drawAges();
  drawPatients();
  $("command").textContent = answer.command;
  $("sql").textContent = answer.sql;
}

function drawCounts() {
  const body = $("counts").tBodies[0];
  body.replaceChildren();
  const rows = answer.datasets.map((d) => answer.counts.find((r) => r.dataset === d) || { dataset: d, images: 0 });
  for (const row of rows) {
    body.append(el("tr", { "data-dataset": row.dataset },
      el("th", { scope: "row" }, row.dataset),
      el("td", { "data-measure": "images" }, number(row.images)),
      el("td", { "data-measure": "studies" }, number(row.studies)),
      el("td", { "data-measure": "patients" }, number(row.patients))));
  }
  if (!answer.counts.length) body.append(el("tr", {}, el("td", { colspan: 4 }, "No image matches the cohort.")));
}

function drawPrevalence() {
  const rows = answer.summary.filter((r) => r.measure === "finding");
  const names = [...new Set(answer.counts.map((r) => r.dataset))];
  const head = $("prevalence").tHead;
  head.replaceChildren(el("tr", {}, el("th", { scope: "col" }, "Finding"), ...names.map((d) => el("th", { scope: "col" }, d))));
  const body = $("prevalence").tBodies[0];
  body.replaceChildren();
  for (const f of [...findings, "No Finding"]) {
    const cells = names.map((d) => {
      const r = rows.find((x) => x.dataset === d && x.item === f);
      if (!r) return el("td", { class: "none", title: "not labelled in this dataset" }, "—");
      return el("td", { "data-dataset": d, "data-finding": f, "data-n": r.n, "data-denominator": r.denominator ?? "" },
        `${r.pct ?? ""}% `, el("small", {}, `${number(r.n)} / ${number(r.denominator)}`));
    });
    body.append(el("tr", {}, el("th", { scope: "row" }, f), ...cells));
  }
}

// The heatmap's dataset is the page's own state, kept in the URL's fragment
// (`#heatmap=padchest`): the API's parameters are the cohort's only.
function heatmapInLink() {
  return new URLSearchParams(location.hash.slice(1)).get("heatmap");
}

function heatmapFragment() {
  const d = $("heatmap-dataset").value || heatmapInLink();
  return d ? `#${new URLSearchParams({ heatmap: d })}` : "";
}

// The page's address and its permalink name the heatmap's dataset shown.
function keepHeatmapInLink() {
  history.replaceState(null, "", location.pathname + location.search + heatmapFragment());
  $("permalink").href = location.href;
}

function heatmapChosen() {
  drawHeatmap();
  keepHeatmapInLink();
}

function drawHeatmapChoices() {
  const select = $("heatmap-dataset");
  const names = [...new Set(answer.cooccurrence.map((r) => r.dataset))];
  const wanted = select.value || heatmapInLink();
  const keep = names.includes(wanted) ? wanted : names[0];
  select.replaceChildren(...names.map((d) => el("option", { value: d }, d)));
  if (keep) select.value = keep;
  // Another dataset than the link's when the one asked has no pairs.
  keepHeatmapInLink();
}

function drawHeatmap() {
  const box = $("heatmap");
  box.replaceChildren();
  const dataset = $("heatmap-dataset").value;
  const pairs = answer.cooccurrence.filter((r) => r.dataset === dataset);
  const labels = findings.filter((f) => pairs.some((r) => r.label_a === f));
  if (!labels.length) {
    box.append(el("p", {}, "No pair of findings is labelled in this cohort."));
    return;
  }
  // Margins from the longest name (11 px text is about 6.5 px a character); the
  // column names are turned 60 degrees, so they reach up and to the right.
  const longest = Math.max(...labels.map((f) => f.length)) * 6.5;
  const cell = 24, left = longest + 12, top = longest * 0.87 + 12;
  const size = labels.length * cell;
  const chart = svg("svg", { width: left + size + longest * 0.5 + 10, height: top + size + 10, role: "img",
    "aria-label": `Lift of each pair of findings in ${dataset}` });
  labels.forEach((f, i) => {
    chart.append(svg("text", { x: left - 6, y: top + i * cell + cell * 0.65, "text-anchor": "end", class: "axis" }, f));
    chart.append(svg("text", { transform: `translate(${left + i * cell + cell * 0.65},${top - 6}) rotate(-60)`, class: "axis" }, f));
  });
  for (const r of pairs) {
    const i = labels.indexOf(r.label_a), j = labels.indexOf(r.label_b);
    if (i < 0 || j < 0) continue;
    const rect = svg("rect", { x: left + j * cell, y: top + i * cell, width: cell - 1, height: cell - 1,
      fill: liftColour(r.lift), "data-a": r.label_a, "data-b": r.label_b });
    rect.append(svg("title", {}, `${r.label_a} & ${r.label_b}: lift ${r.lift ?? "—"} (${number(r.n_ab)} images with both)`));
    chart.append(rect);
  }
  // The chart's numbers as a table: readable without a pointer and by a screen reader.
  const rows = pairs.filter((r) => labels.indexOf(r.label_a) < labels.indexOf(r.label_b))
    .sort((x, y) => (y.n_ab - x.n_ab) || (labels.indexOf(x.label_a) - labels.indexOf(y.label_a)));
  box.append(chart, numbers(`Pairs of findings in ${dataset}`, ["Finding A", "Finding B", "Images with both", "Lift"],
    rows.map((r) => [r.label_a, r.label_b, number(r.n_ab), r.lift ?? "—"]), { id: "heatmap-numbers" }));
}

// A chart's numbers in a table the reader can open under it; one the reader opened
// stays open when the chart is drawn again.
const openNumbers = new Set();
function numbers(caption, headers, rows, attributes = {}) {
  const body = el("tbody", {}, ...rows.map(([first, ...rest]) =>
    el("tr", {}, el("th", { scope: "row" }, first), ...rest.map((v) => el("td", {}, v)))));
  const details = el("details", openNumbers.has(attributes.id) ? { ...attributes, open: "" } : attributes,
    el("summary", {}, "The numbers"),
    el("div", { class: "scroll" }, el("table", {}, el("caption", {}, caption),
      el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)))), body)));
  details.addEventListener("toggle", () => {
    if (details.open) openNumbers.add(attributes.id);
    else openNumbers.delete(attributes.id);
  });
  return details;
}

// Lift on a log scale centred on 1: white at 1, blue below, red above (4× saturates).
function liftColour(lift) {
  if (lift === null || lift === undefined || !(lift > 0)) return "#ddd";
  const t = Math.max(-1, Math.min(1, Math.log2(lift) / 2));
  const fade = (c) => Math.round(255 - (255 - c) * Math.abs(t));
  return t >= 0 ? `rgb(${fade(178)},${fade(24)},${fade(43)})` : `rgb(${fade(33)},${fade(102)},${fade(172)})`;
}

function drawAges() {
  const box = $("ages");
  box.replaceChildren();
  const sexes = [...new Set(answer.ages.map((r) => r.sex))];
  const buckets = [...new Set(answer.ages.map((r) => r.age_from))].sort((a, b) => a - b);
  if (!buckets.length) {
    box.append(el("p", {}, "No image of the cohort has an age."));
    return;
  }
  const colours = { F: "#c2185b", M: "#1565c0", unknown: "#9e9e9e" };
  const most = Math.max(...answer.ages.map((r) => r.images));
  const width = 28, height = 180, left = 60, bottom = 30;
  const chart = svg("svg", { width: left + buckets.length * width + 20, height: height + bottom + 30, role: "img",
    "aria-label": "Images per five years of age, by sex" });
  const bar = (width - 4) / sexes.length;
  buckets.forEach((b, i) => {
    sexes.forEach((s, k) => {
      const r = answer.ages.find((x) => x.age_from === b && x.sex === s);
      if (!r) return;
      const h = (r.images / most) * height;
      const rect = svg("rect", { x: left + i * width + k * bar, y: 20 + height - h, width: bar, height: h, fill: colours[s] || "#555" });
      rect.append(svg("title", {}, `${s}, ${b}–${b + 4}: ${number(r.images)} images`));
      chart.append(rect);
    });
    if (i % 2 === 0) chart.append(svg("text", { x: left + i * width, y: 20 + height + 16, class: "axis" }, b));
  });
  chart.append(svg("text", { x: left - 6, y: 26, "text-anchor": "end", class: "axis" }, number(most)));
  chart.append(svg("text", { x: left - 6, y: 20 + height, "text-anchor": "end", class: "axis" }, "0"));
  sexes.forEach((s, k) => {
    chart.append(svg("rect", { x: left + k * 90, y: 0, width: 12, height: 12, fill: colours[s] || "#555" }));
    chart.append(svg("text", { x: left + k * 90 + 16, y: 11, class: "axis" }, s));
  });
  const count = (b, s) => answer.ages.find((x) => x.age_from === b && x.sex === s)?.images ?? 0;
  box.append(chart, numbers("Images per five years of age, by sex", ["Age", ...sexes],
    buckets.map((b) => [`${b}–${b + 4}`, ...sexes.map((s) => number(count(b, s)))]), { id: "ages-numbers" }));
}

function drawPatients() {
  const list = $("patients");
  list.replaceChildren();
  for (const p of answer.patients) {
    const button = el("button", { type: "button", "data-dataset": p.dataset, "data-patient": p.patient_id },
      `${p.dataset} ${p.patient_id} (${p.images} in the cohort)`);
    button.addEventListener("click", () => timeline(p.dataset, p.patient_id));
    list.append(el("li", {}, button));
  }
  if (!answer.patients.length) list.append(el("li", {}, "No patient ids in this cohort."));
}

async function timeline(dataset, patient) {
  const box = $("timeline");
  box.replaceChildren(el("p", {}, "Loading…"));
  try {
    const t = await getJson(`/api/patient?${new URLSearchParams({ dataset, patient })}`);
    const table = el("table", { "aria-label": `Images of patient ${patient}` },
      el("thead", {}, el("tr", {}, ...["Image", "Study", "Age", "Sex", "View", "Labels", "Split"].map((h) => el("th", { scope: "col" }, h)))));
    const body = el("tbody");
    for (const r of t.images) {
      body.append(el("tr", {}, el("td", {}, r.image_id), el("td", {}, r.study_id), el("td", {}, r.age ?? ""),
        el("td", {}, r.sex ?? ""), el("td", {}, r.view ?? ""), el("td", {}, (r.labels || []).join(", ")), el("td", {}, r.split ?? "")));
    }
    table.append(body);
    box.replaceChildren(el("h3", { tabindex: "-1" }, `${dataset}, ${patient}: all ${t.images.length} images of the patient (not only the cohort's)`), table);
    box.querySelector("h3").focus();
  } catch (e) {
    box.replaceChildren(el("p", { role: "alert" }, e.message));
  }
}

function copy(id) {
  navigator.clipboard?.writeText($(id).textContent);
}

async function start() {
  try {
    const options = await getJson("/api/options");
    datasets = options.datasets.map((d) => d.dataset);
    findings = options.findings;
    $("sources").append(...options.sources.map((s) => el("option", { value: s })));
    $("datasets").append(...options.datasets.map((d) =>
      el("label", {}, el("input", { type: "checkbox", name: "dataset", value: d.dataset, checked: "" }),
        ` ${d.dataset} `, el("small", {}, `${number(d.images)} images`))));
    $("findings").querySelector("tbody").append(...findings.map((f) => {
      const id = `finding-${f.replace(/\W+/g, "-")}`;
      const select = el("select", { id, "data-finding": f },
        el("option", { value: "" }, "—"), el("option", { value: "with" }, "with"),
        el("option", { value: "any" }, "any of"), el("option", { value: "without" }, "without"));
      return el("tr", {}, el("th", { scope: "row" }, el("label", { for: id }, f)), el("td", {}, select));
    }));
    restore(new URLSearchParams(location.search));
  } catch (e) {
    $("error").textContent = e.message;
    $("error").hidden = false;
    document.body.dataset.state = "error";
    return;
  }
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  form.addEventListener("submit", (e) => e.preventDefault());
  $("heatmap-dataset").addEventListener("change", heatmapChosen);
  $("copy-command").addEventListener("click", () => copy("command"));
  $("copy-sql").addEventListener("click", () => copy("sql"));
  update();
}

start();
