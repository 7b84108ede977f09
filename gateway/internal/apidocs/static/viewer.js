// Renders parley.swagger.json as a browsable list of operations. Everything
// from the document is inserted as text (textContent), never as HTML.
"use strict";

(function () {
  const main = document.getElementById("operations");
  const filter = document.getElementById("filter");
  let doc = null;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return e;
  }

  function refName(ref) { return ref ? ref.replace("#/definitions/", "") : ""; }

  // schemaExample builds a JSON-shaped sketch of a schema, to show what a
  // request or response body looks like.
  function schemaExample(schema, depth) {
    if (!schema || depth > 4) return null;
    if (schema.$ref) return schemaExample(doc.definitions[refName(schema.$ref)], depth + 1);
    if (schema.type === "array") return [schemaExample(schema.items, depth + 1)];
    if (schema.type === "object" || schema.properties) {
      const out = {};
      for (const [k, v] of Object.entries(schema.properties || {})) out[k] = schemaExample(v, depth + 1);
      if (schema.additionalProperties) out["<key>"] = schemaExample(schema.additionalProperties, depth + 1);
      return out;
    }
    if (schema.enum) return schema.enum.join(" | ");
    return schema.format ? schema.type + " (" + schema.format + ")" : (schema.type || "any");
  }

  function operationView(method, path, op) {
    const isPublic = Array.isArray(op.security) && op.security.length === 0;
    const summary = el("summary", {},
      el("span", { class: "method " + method }, method),
      el("span", { class: "path" }, path),
      el("span", {}, op.summary || op.operationId || ""),
      isPublic ? el("span", { class: "public" }, "public") : null);
    const body = el("div", { class: "body" });
    if (op.description) body.append(el("p", {}, op.description));
    const params = (op.parameters || []).filter((p) => p.in !== "body");
    if (params.length) {
      const rows = params.map((p) => el("tr", {},
        el("td", {}, el("code", {}, p.name)), el("td", {}, p.in),
        el("td", {}, p.type || ""), el("td", {}, p.required ? "required" : ""),
        el("td", {}, p.description || "")));
      body.append(el("h3", {}, "Parameters"), el("table", {},
        el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, ""), el("th", {}, "description")),
        ...rows));
    }
    const bodyParam = (op.parameters || []).find((p) => p.in === "body");
    if (bodyParam) {
      body.append(el("h3", {}, "Request body"),
        el("pre", {}, JSON.stringify(schemaExample(bodyParam.schema, 0), null, 2)));
    }
    for (const [code, resp] of Object.entries(op.responses || {})) {
      body.append(el("h3", {}, "Response " + code + (resp.description ? " — " + resp.description : "")));
      if (resp.schema) body.append(el("pre", {}, JSON.stringify(schemaExample(resp.schema, 0), null, 2)));
    }
    const d = el("details", {}, summary, body);
    d.dataset.search = (method + " " + path + " " + (op.summary || "") + " " + (op.operationId || "")).toLowerCase();
    return d;
  }

  function render() {
    const byTag = new Map();
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const [method, op] of Object.entries(item)) {
        if (typeof op !== "object" || !op.responses) continue;
        const tag = (op.tags && op.tags[0]) || "other";
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push(operationView(method, path, op));
      }
    }
    main.replaceChildren();
    for (const [tag, ops] of [...byTag.entries()].sort()) {
      main.append(el("section", { class: "tag" }, el("h2", {}, tag), ...ops));
    }
    applyFilter();
  }

  function applyFilter() {
    const q = filter.value.trim().toLowerCase();
    for (const d of main.querySelectorAll("details")) d.hidden = q !== "" && !d.dataset.search.includes(q);
    for (const s of main.querySelectorAll("section.tag")) s.hidden = [...s.querySelectorAll("details")].every((d) => d.hidden);
  }

  filter.addEventListener("input", applyFilter);
  fetch("parley.swagger.json").then((r) => {
    if (!r.ok) throw new Error("HTTP " + r.status);
    return r.json();
  }).then((d) => {
    doc = d;
    document.getElementById("title").textContent = (d.info && d.info.title) || "Parley API";
    document.getElementById("description").textContent = (d.info && d.info.description) || "";
    render();
  }).catch((err) => { main.replaceChildren(el("p", {}, "Could not load the API document: " + err.message)); });
})();
