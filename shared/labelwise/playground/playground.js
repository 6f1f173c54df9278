// labelwise playground: plain JavaScript over the public API of the server that serves this page.
// The API key lives in sessionStorage only (this tab), never in local storage.
"use strict";

const KEY_ITEM = "labelwise.apiKey";
const $ = (id) => document.getElementById(id);

// --- the API key ---------------------------------------------------------------------------

function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) || "";
}

function setKey(value) {
  const key = value.trim();
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
  $("key-state").textContent = key ? "key set for this tab" : "no key";
  $("api-key-error").textContent = "";
}

// `labelwise serve` prints this page's URL with `#key=...` on first start: the fragment never
// reaches a server. The page keeps the key for the tab and drops it from the address.
function takeKeyFromFragment() {
  const key = new URLSearchParams(location.hash.slice(1)).get("key");
  if (!key) return;
  history.replaceState(null, "", location.pathname + location.search);
  $("api-key").value = key;
  setKey(key);
}

function initKey() {
  $("api-key").value = apiKey();
  setKey(apiKey());
  takeKeyFromFragment();
  window.addEventListener("hashchange", takeKeyFromFragment);
  $("api-key").addEventListener("input", (e) => setKey(e.target.value));
  $("key-forget").addEventListener("click", () => {
    $("api-key").value = "";
    setKey("");
  });
}

// --- requests --------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || "";
    this.errors = (body && body.errors) || [];
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (apiKey()) headers.Authorization = `Bearer ${apiKey()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// The spinner next to `button` (made on first use).
function progressOf(button) {
  let progress = button.nextElementSibling;
  if (!progress || !progress.classList.contains("progress")) {
    progress = el("span", { class: "progress" }, el("span", { class: "spinner" }), el("span", { class: "elapsed" }));
    button.after(progress);
  }
  return progress;
}

// A spinner with the elapsed time while `work` runs; the button is disabled meanwhile.
async function withProgress(button, work) {
  const progress = progressOf(button);
  const elapsed = progress.querySelector(".elapsed");
  const start = performance.now();
  const tick = () => (elapsed.textContent = `working… ${((performance.now() - start) / 1000).toFixed(1)} s`);
  tick();
  const timer = setInterval(tick, 100);
  button.disabled = true;
  progress.hidden = false;
  progress.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    clearInterval(timer);
    button.disabled = false;
    progress.hidden = true;
    progress.removeAttribute("aria-busy");
  }
}

// --- errors next to their field --------------------------------------------------------------

const CODE_FIELDS = {
  INPUT_INVALID_LABELS: "labels",
  INPUT_LABEL_LIMIT_EXCEEDED: "labels",
  INPUT_INVALID_IMAGE: "images",
  INPUT_PIXEL_LIMIT_EXCEEDED: "images",
  INPUT_UNSUPPORTED: "input",
  INPUT_LIMIT_EXCEEDED: "input",
  INPUT_TOO_LONG: "input",
  INPUT_TOKEN_LIMIT_EXCEEDED: "input",
  INPUT_MODEL_NOT_FOUND: "model",
  INPUT_MODEL_MISMATCH: "model",
  RESOURCE_NOT_FOUND: "classifier_id",
};

// The field an API error concerns: the key (401), a 422's first field, or the code's field.
function fieldOf(error) {
  if (error.status === 401) return "key";
  const first = error.errors.find((e) => e.field);
  if (first) return first.field.replace(/^body\.?/, "").split(".")[0];
  return CODE_FIELDS[error.code] || "";
}

// Show `error` next to the field it concerns (`slots`: field -> element id), else in `fallbackId`.
function showError(error, slots, fallbackId) {
  const field = error instanceof ApiError ? fieldOf(error) : "";
  const target = field === "key" ? "api-key-error" : slots[field] || fallbackId;
  let text = error.message;
  if (error instanceof ApiError) {
    const details = error.errors.map((e) => `${e.field}: ${e.message}`).join("; ");
    if (details && !text.includes(details)) text = `${text} (${details})`;
    if (error.code) text = `${text} [${error.code}]`;
  }
  $(target).textContent = text;
}

function clearErrors(ids) {
  for (const id of ids) $(id).textContent = "";
}

// --- parsing the forms ----------------------------------------------------------------------

function lines(text) {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l);
}

// Labels as the API takes them: a list, or named groups ("group: a, b" per line).
function parseLabels(text, format) {
  if (format !== "groups") return lines(text);
  const groups = {};
  for (const line of lines(text)) {
    const at = line.indexOf(":");
    if (at < 1) throw new Error(`"${line}" is not "group: label, label".`);
    groups[line.slice(0, at).trim()] = line.slice(at + 1).split(",").map((l) => l.trim()).filter((l) => l);
  }
  return groups;
}

// The shape of parsed labels, to check that two wordings line up.
function shapeOf(labels) {
  if (Array.isArray(labels)) return [labels.length];
  return Object.values(labels).map((group) => group.length);
}

// RFC 4180 CSV: quoted fields, doubled quotes, commas and newlines inside quotes.
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += c;
  }
  if (field || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((r) => r.some((f) => f.trim()));
}

// A multi-label example's labels: `a|b` split at `|`, blanks dropped (none is allowed).
function splitLabels(value) {
  return value.split("|").map((l) => l.trim()).filter((l) => l);
}

// Examples from pasted or dropped CSV (with a header) or JSONL: `{text, label}`, or with `multi`
// `{text, labels: [...]}` (a CSV label `a|b`, a JSONL `labels` list or `label` string).
function parseExamples(text, multi = false) {
  const trimmed = text.trim();
  if (!trimmed) throw new Error("Paste examples or choose a CSV/JSONL file first.");
  if (trimmed.startsWith("{")) {
    return lines(trimmed).map((line, i) => {
      let record;
      try {
        record = JSON.parse(line);
      } catch (_) {
        throw new Error(`Line ${i + 1} is not JSON.`);
      }
      if (multi && typeof record.text === "string" && Array.isArray(record.labels))
        return { text: record.text, labels: record.labels };
      if (typeof record.text !== "string" || typeof record.label !== "string")
        throw new Error(`Line ${i + 1} needs "text" and "label" strings${multi ? ' (or a "labels" list)' : ""}.`);
      return multi ? { text: record.text, labels: splitLabels(record.label) } : { text: record.text, label: record.label };
    });
  }
  const rows = parseCsv(trimmed);
  const header = rows[0].map((h) => h.trim().toLowerCase());
  const t = header.indexOf("text");
  const l = header.indexOf("label");
  if (t < 0 || l < 0) throw new Error('The CSV needs a header row with "text" and "label" columns.');
  const examples = rows.slice(1).map((r) => ({ text: (r[t] || "").trim(), label: (r[l] || "").trim() }));
  if (multi) {
    const noText = examples.findIndex((e) => !e.text);
    if (noText >= 0) throw new Error(`Row ${noText + 2} has an empty text.`);
    if (!examples.length) throw new Error("The CSV has a header but no examples.");
    return examples.map((e) => ({ text: e.text, labels: splitLabels(e.label) }));
  }
  const bad = examples.findIndex((e) => !e.text || !e.label);
  if (bad >= 0) throw new Error(`Row ${bad + 2} has an empty text or label.`);
  if (!examples.length) throw new Error("The CSV has a header but no examples.");
  return examples;
}

function readFile(file, asDataUrl) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error(`Cannot read ${file.name}.`));
    if (asDataUrl) reader.readAsDataURL(file);
    else reader.readAsText(file);
  });
}

// --- results ---------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function scoreCell(score, best) {
  const fill = el("span");
  fill.style.width = `${(score * 100).toFixed(1)}%`; // CSSOM: allowed by the page's CSP, unlike style=""
  const bar = el("div", { class: "bar" }, fill);
  return el("td", { class: best ? "score best" : "score" }, score.toFixed(3), bar);
}

// One table per label group: a row per input, a column per label (in the request's order).
function scoreTables(title, inputNames, response, labels) {
  const box = el("div", { class: "result" }, el("h3", {}, title));
  const groups = Array.isArray(labels) ? { "": labels } : labels;
  for (const [group, groupLabels] of Object.entries(groups)) {
    const head = el("tr", {}, el("th", {}, group ? `input (${group})` : "input"));
    for (const label of groupLabels) head.append(el("th", {}, label));
    const body = el("tbody");
    response.data.forEach((item, i) => {
      const predictions = group ? item.predictions[group] : item.predictions;
      const prediction = group ? item.prediction[group] : item.prediction;
      const scores = Object.fromEntries(predictions.map((p) => [p.label, p.score]));
      const row = el("tr", {}, el("td", { class: "input" }, inputNames[i]));
      // multi-label: `prediction` lists every label at or above the threshold (possibly none)
      const isBest = (label) => (Array.isArray(prediction) ? prediction.includes(label) : label === prediction);
      for (const label of groupLabels) row.append(scoreCell(scores[label] || 0, isBest(label)));
      body.append(row);
    });
    box.append(el("table", { class: "scores" }, el("thead", {}, head), body));
  }
  box.append(el("p", { class: "muted" }, `model ${response.model}, ${response.usage.total_tokens} tokens`));
  return box;
}

// The predicted label's position (per group), so two wordings compare label by label.
function predictedPositions(item, labels) {
  if (Array.isArray(labels)) return [labels.indexOf(item.prediction)];
  return Object.entries(labels).map(([group, groupLabels]) => groupLabels.indexOf(item.prediction[group]));
}

function predictionText(item) {
  if (typeof item.prediction === "string") return `${item.prediction} (${item.score.toFixed(2)})`;
  return Object.entries(item.prediction)
    .map(([group, label]) => `${group}: ${label} (${item.score[group].toFixed(2)})`)
    .join(", ");
}

function agreementTable(inputNames, a, b, labelsA, labelsB) {
  let agreed = 0;
  const body = el("tbody");
  a.data.forEach((itemA, i) => {
    const itemB = b.data[i];
    const same = predictedPositions(itemA, labelsA).join() === predictedPositions(itemB, labelsB).join();
    if (same) agreed++;
    body.append(
      el(
        "tr",
        { class: same ? "" : "disagree-row" },
        el("td", { class: "input" }, inputNames[i]),
        el("td", {}, predictionText(itemA)),
        el("td", {}, predictionText(itemB)),
        el("td", { class: same ? "agree" : "disagree" }, same ? "agree" : "differ"),
      ),
    );
  });
  const total = a.data.length;
  const share = total ? Math.round((100 * agreed) / total) : 0;
  const summary = el(
    "p",
    { class: "summary", id: "zs-agreement-summary" },
    `Agreement: ${agreed}/${total} inputs (${share}%)`,
  );
  const head = el("tr", {}, el("th", {}, "input"), el("th", {}, "wording A"), el("th", {}, "wording B"), el("th", {}, ""));
  return el("div", {}, summary, el("table", { class: "agreement" }, el("thead", {}, head), body));
}

// --- zero-shot -------------------------------------------------------------------------------

const ZS_ERRORS = ["zs-labels-error", "zs-labels-b-error", "zs-texts-error", "zs-images-error", "zs-model-error", "zs-error"];

async function zeroShotInputs() {
  const texts = lines($("zs-texts").value);
  const inputs = texts.slice();
  const names = texts.slice();
  const url = $("zs-image-url").value.trim();
  if (url) {
    inputs.push({ image: url });
    names.push(`image: ${url}`);
  }
  for (const file of $("zs-image-file").files) {
    inputs.push({ image: await readFile(file, true) }); // a data: URL, base64
    names.push(`image: ${file.name}`);
  }
  return { inputs, names };
}

function settled(promise) {
  return promise.then(
    (value) => ({ status: "fulfilled", value }),
    (reason) => ({ status: "rejected", reason }),
  );
}

// A zero-shot request; its answer must be about these inputs and these labels.
async function classifyZeroShot(model, inputs, labels) {
  const response = await api("POST", "/v1/classify", { model, input: inputs, labels });
  const asked = new Set(Array.isArray(labels) ? labels : Object.values(labels).flat());
  const answered = response.data.flatMap((item) =>
    typeof item.prediction === "string" ? [item.prediction] : Object.values(item.prediction),
  );
  if (response.data.length !== inputs.length || answered.some((label) => !asked.has(label)))
    throw new Error("The server's answer does not match this request (other inputs or labels); run it again.");
  return response;
}

async function runZeroShot() {
  clearErrors(ZS_ERRORS);
  $("zs-results").replaceChildren();
  $("zs-agreement").replaceChildren();
  const format = $("zs-label-format").value;
  const compare = $("zs-compare").checked;
  let labelsA;
  let labelsB;
  try {
    labelsA = parseLabels($("zs-labels").value, format);
  } catch (e) {
    $("zs-labels-error").textContent = e.message;
    return;
  }
  if (compare) {
    try {
      labelsB = parseLabels($("zs-labels-b").value, format);
    } catch (e) {
      $("zs-labels-b-error").textContent = e.message;
      return;
    }
    if (shapeOf(labelsA).join() !== shapeOf(labelsB).join()) {
      $("zs-labels-b-error").textContent =
        "Wording B must have as many labels as wording A (per group), in the same order.";
      return;
    }
  }
  const { inputs, names } = await zeroShotInputs().catch((e) => {
    $("zs-images-error").textContent = e.message;
    return { inputs: null, names: null };
  });
  if (!inputs) return;
  if (!inputs.length) {
    $("zs-texts-error").textContent = "Enter at least one text (or an image).";
    return;
  }
  const model = $("zs-model").value || undefined;
  const slots = (labelsId) => ({ labels: labelsId, input: "zs-texts-error", images: "zs-images-error", model: "zs-model-error" });
  await withProgress($("zs-run"), async () => {
    // One request at a time: the local server's cores serve one well, and the wordings run alike.
    const a = await settled(classifyZeroShot(model, inputs, labelsA));
    const b = compare ? await settled(classifyZeroShot(model, inputs, labelsB)) : null;
    if (a.status === "rejected") showError(a.reason, slots("zs-labels-error"), "zs-error");
    if (b && b.status === "rejected") showError(b.reason, slots("zs-labels-b-error"), "zs-error");
    const tables = [];
    if (a.status === "fulfilled") tables.push(scoreTables(compare ? "Wording A" : "Scores", names, a.value, labelsA));
    if (b && b.status === "fulfilled") tables.push(scoreTables("Wording B", names, b.value, labelsB));
    $("zs-results").replaceChildren(...tables);
    if (compare && a.status === "fulfilled" && b.status === "fulfilled")
      $("zs-agreement").replaceChildren(agreementTable(names, a.value, b.value, labelsA, labelsB));
  });
}

// --- few-shot --------------------------------------------------------------------------------

const FS_TRAIN_ERRORS = ["fs-examples-error", "fs-model-error", "fs-iters-error", "fs-update-id-error", "fs-train-error"];

async function train() {
  clearErrors(FS_TRAIN_ERRORS);
  let examples;
  const multi = $("fs-multi-label").checked && !$("fs-update-id").value.trim();
  try {
    examples = parseExamples($("fs-examples").value, multi);
  } catch (e) {
    $("fs-examples-error").textContent = e.message;
    return;
  }
  const body = {
    input: examples,
    num_iters: Number($("fs-iters").value),
    access: $("fs-access").value,
  };
  if ($("fs-model").value) body.model = $("fs-model").value;
  if ($("fs-update-id").value.trim()) body.classifier_id = $("fs-update-id").value.trim();
  if (multi) body.multi_label = true;
  const slots = {
    input: "fs-examples-error",
    labels: "fs-examples-error",
    images: "fs-examples-error",
    model: "fs-model-error",
    num_iters: "fs-iters-error",
    access: "fs-train-error",
    classifier_id: "fs-update-id-error",
  };
  await withProgress($("fs-train"), async () => {
    try {
      const trained = await api("POST", "/v1/train", body);
      $("fs-trained-id").textContent = trained.classifier_id;
      $("fs-trained-kind").textContent = kindText(trained.multi_label);
      $("fs-trained-version").textContent = String(trained.version);
      $("fs-trained-labels").textContent = trained.labels.join(", ");
      $("fs-trained-samples").textContent = `${trained.num_samples} in this call, ${trained.total_samples} in all`;
      $("fs-trained").hidden = false;
      $("fs-classifier-id").value = trained.classifier_id;
    } catch (e) {
      showError(e, slots, "fs-train-error");
      return;
    }
    await listClassifiers();
  });
}

async function classifyWithClassifier() {
  clearErrors(["fs-classifier-id-error", "fs-texts-error", "fs-classify-error"]);
  $("fs-results").replaceChildren();
  const classifierId = $("fs-classifier-id").value.trim();
  const texts = lines($("fs-texts").value);
  if (!classifierId) {
    $("fs-classifier-id-error").textContent = "Train a classifier or pick one from the list first.";
    return;
  }
  if (!texts.length) {
    $("fs-texts-error").textContent = "Enter at least one text.";
    return;
  }
  const slots = { classifier_id: "fs-classifier-id-error", input: "fs-texts-error", model: "fs-classify-error" };
  await withProgress($("fs-classify"), async () => {
    try {
      const result = await api("POST", "/v1/classify", { classifier_id: classifierId, input: texts });
      const labels = result.data.length ? result.data[0].predictions.map((p) => p.label).sort() : [];
      $("fs-results").replaceChildren(scoreTables(`Classifier ${classifierId}`, texts, result, labels));
    } catch (e) {
      showError(e, slots, "fs-classify-error");
    }
  });
}

// A classifier's kind as the listing shows it (unknown: stored by an earlier release, not trained since).
function kindText(multiLabel) {
  if (multiLabel === undefined || multiLabel === null) return "";
  return multiLabel ? "multi-label" : "single-label";
}

async function listClassifiers() {
  $("fs-list-error").textContent = "";
  const body = $("fs-list").querySelector("tbody");
  try {
    const classifiers = await api("GET", "/v1/classifiers");
    body.replaceChildren(
      ...classifiers.map((c) => {
        const use = el("button", { type: "button", class: "secondary", "data-use": c.classifier_id }, "Use");
        use.addEventListener("click", () => ($("fs-classifier-id").value = c.classifier_id));
        const remove = el("button", { type: "button", class: "danger", "data-delete": c.classifier_id }, "Delete");
        remove.addEventListener("click", () => deleteClassifier(c.classifier_id, remove));
        const meta = c.metadata_ || {};
        return el(
          "tr",
          { "data-classifier": c.classifier_id },
          el("td", {}, el("code", {}, c.classifier_id)),
          el("td", {}, c.model),
          el("td", { class: "kind" }, kindText(meta.multi_label)),
          el("td", {}, c.labels.join(", ")),
          el("td", {}, c.access),
          el("td", {}, String(meta.version ?? "")),
          el("td", {}, String(meta.num_samples ?? "")),
          el("td", {}, use, " ", remove),
        );
      }),
    );
    if (!classifiers.length) body.replaceChildren(el("tr", {}, el("td", { colspan: "8", class: "muted" }, "No classifiers yet.")));
  } catch (e) {
    showError(e, {}, "fs-list-error");
  }
}

async function deleteClassifier(classifierId, button) {
  if (!confirm(`Delete classifier ${classifierId} and all its versions?`)) return;
  await withProgress(button, async () => {
    try {
      await api("DELETE", `/v1/classifiers/${encodeURIComponent(classifierId)}`);
      if ($("fs-classifier-id").value === classifierId) $("fs-classifier-id").value = "";
      if ($("fs-update-id").value === classifierId) $("fs-update-id").value = "";
    } catch (e) {
      showError(e, {}, "fs-list-error");
      return;
    }
    await listClassifiers();
  });
}

async function loadExampleFile(file) {
  $("fs-examples-error").textContent = "";
  try {
    $("fs-examples").value = await readFile(file, false);
  } catch (e) {
    $("fs-examples-error").textContent = e.message;
  }
}

// --- start -----------------------------------------------------------------------------------

async function loadHealth() {
  try {
    const health = await api("GET", "/health");
    $("server-info").textContent = `labelwise ${health.version}: ${health.models.join(", ")}`;
    for (const id of ["zs-model", "fs-model"]) {
      for (const model of health.models) $(id).append(el("option", { value: model }, model));
    }
  } catch (e) {
    $("server-info").textContent = `server not reachable: ${e.message}`;
  }
}

function initTabs() {
  for (const tab of document.querySelectorAll(".tabs [role=tab]")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".tabs [role=tab]")) {
        const selected = other === tab;
        other.setAttribute("aria-selected", String(selected));
        $(other.dataset.panel).hidden = !selected;
      }
      if (tab.dataset.panel === "fewshot" && apiKey()) listClassifiers();
    });
  }
}

function initDrop() {
  const zone = $("fs-examples");
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("dragover");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragover"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragover");
    if (e.dataTransfer.files.length) loadExampleFile(e.dataTransfer.files[0]);
  });
  $("fs-file").addEventListener("change", (e) => {
    if (e.target.files.length) loadExampleFile(e.target.files[0]);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  initKey();
  initTabs();
  initDrop();
  $("zs-compare").addEventListener("change", (e) => ($("zs-wording-b").hidden = !e.target.checked));
  $("zs-run").addEventListener("click", runZeroShot);
  $("fs-train").addEventListener("click", train);
  $("fs-classify").addEventListener("click", classifyWithClassifier);
  $("fs-refresh").addEventListener("click", () => withProgress($("fs-refresh"), listClassifiers));
  loadHealth();
});
