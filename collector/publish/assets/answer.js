/* The question-first picker: your GPU(s), your system RAM (size, type) and a model -> one card per file that ran there, and apart
   from those, an estimate card per file the speed and memory models say fits (labelled, with its range).
   Reads answers/index.json and answers/d/<device>.json (written by the site build). Every value from the data is
   set as text (textContent), never as markup. Without JavaScript the device and model pages give the same cards. */
(function () {
  "use strict";

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function norm(s) {
    return String(s || "").toLowerCase().replace(/[\s_\-]+/g, " ").trim();
  }

  function getJSON(url) {
    return fetch(url, {credentials: "same-origin"}).then(function (r) {
      if (!r.ok) throw new Error(String(r.status));
      return r.json();
    });
  }

  function figure(dl, name, fig, extra, link) {
    var dt = el("dt", null, name);
    var dd = el("dd");
    if (fig) {
      dd.appendChild(el("span", "qa-v", fig.value));
      var note = el("span", "qa-n", [fig.detail].concat(extra || []).filter(Boolean).join(" · "));
      if (link) {
        note.appendChild(document.createTextNode(" · "));
        var a = el("a", null, "its run page");
        a.href = link;
        note.appendChild(a);
      }
      dd.appendChild(note);
    } else {
      dd.textContent = "not known";
    }
    dl.appendChild(dt);
    dl.appendChild(dd);
  }

  function row(dl, name, text) {
    dl.appendChild(el("dt", null, name));
    dl.appendChild(el("dd", null, text));
  }

  function card(c, root, memory) {
    var a = el("div", "qa-card qa-card-" + c.tier);
    var h = el("h4", "qa-card-title");
    h.appendChild(el("span", "qa-card-quant", c.quant));
    h.appendChild(el("span", "qa-badge qa-" + (c.tier === "measured" ? "measured" : "imported"), c.tier === "measured" ? "measured here" : "stated by its source"));
    a.appendChild(h);
    var dl = el("dl", "qa-card-facts");
    figure(dl, "Generation (tg)", c.tg, [c.test, c.depth].concat(c.also && c.also.length ? ["the source also states: " + c.also.join("; ")] : []));
    figure(dl, "Prompt (pp)", c.pp, [c.pp_test, c.depth], c.pp_href && root + c.pp_href);
    row(dl, "Context", c.ctx);
    if (c.kld) {
      row(dl, "Mean KLD", c.kld.value + " (against " + c.kld.reference + "; corpus " + c.kld.corpus + "; " + c.kld.join + ")");
    } else {
      row(dl, "Mean KLD", "not known for this file");
    }
    if (c.siblings && c.siblings.length) row(dl, "Other setups", c.siblings.join("; "));
    row(dl, "Settings", c.settings + " · KV types (K/V) " + c.kv);
    row(dl, "Placement", c.fits);
    row(dl, "File", c.file + " · " + c.size + (c.repo ? " · " + c.repo : "") + " · " + c.moe);
    if (c.download && /^https:\/\//.test(c.download.url)) {
      dl.appendChild(el("dt", null, "Download"));
      var dd = el("dd"), dla = el("a", null, c.download.text);
      dla.href = c.download.url;
      dla.rel = "nofollow";
      dd.appendChild(dla);
      dd.appendChild(el("span", "qa-n", c.download.how));
      dl.appendChild(dd);
    }
    row(dl, "Source", c.origin + " · llama.cpp " + c.build + " · date " + c.date + (c.quote ? " · “" + c.quote + "”" : ""));
    a.appendChild(dl);
    if (memory && c.size_gb && c.size_gb > memory) {
      a.appendChild(el("p", "qa-card-warn", "The file (" + c.size + ") is larger than the " + memory + " GB of GPU memory and system RAM you entered together."));
    }
    if (c.spill) a.appendChild(el("p", "qa-card-warn", c.spill));
    if (c.disagree) a.appendChild(el("p", "qa-card-warn", "Results disagree: " + c.disagree));
    (c.caveats || []).forEach(function (w) { a.appendChild(el("p", "qa-card-warn", "The source warns: " + w)); });
    commandBlock(a, c.command, c.command_origin);
    var link = el("a", null, "Run page" + (c.others ? " (" + c.others + " more configuration(s) of this file on the device page)" : ""));
    link.href = root + c.run_href;
    a.appendChild(link);
    return a;
  }

  function commandBlock(a, command, origin) {
    if (!command) {
      a.appendChild(el("p", "qa-n", "No command: " + origin + "."));
      return;
    }
    var pre = el("pre", "qa-card-cmd");
    pre.appendChild(el("code", null, command));
    a.appendChild(pre);
    var copy = el("button", "qa-copy", "Copy command");
    copy.type = "button";
    copy.addEventListener("click", function () {
      if (navigator.clipboard) navigator.clipboard.writeText(command);
      copy.textContent = "Copied";
    });
    a.appendChild(copy);
    a.appendChild(el("p", "qa-n", origin + "."));
  }

  /* a speed as the site writes it: three significant digits, no exponent (estimate/report.py rate) */
  function rate(x) {
    return x >= 100 ? Math.round(x).toLocaleString("en-US") : String(Number(x.toPrecision(3)));
  }

  /* tg with experts in system RAM at the reader's RAM: 1 / (fixed + bytes / (GB/s x eta)), its stated range */
  function offloadTg(t, gbs, label) {
    var v = 1 / (t.fixed_s + t.cpu_bytes / (gbs * 1e9 * t.eta));
    var threads = t.beta_gbs ? " (" + Math.ceil(gbs * t.eta / t.beta_gbs) + " or more threads at the fitted " + Number(t.beta_gbs.toPrecision(2)) + " GB/s each)" : "";
    return {value: "~" + rate(v) + " t/s", detail: "with " + label + ": stated range " + rate(v * t.low) + "–" + rate(v * t.high) + " · " + t.note + " · your CPU's threads assumed to read at least that" + threads};
  }

  /* an estimate: its own badge and italics, its stated range and held-out error, never beside a measured card */
  function estimateCard(c, href, ram, ramType) {
    var a = el("div", "qa-card qa-card-estimate");
    var h = el("h4", "qa-card-title");
    h.appendChild(el("span", "qa-card-quant", c.quant));
    h.appendChild(el("span", "qa-badge qa-estimate", "estimate, not a measurement"));
    if (c.memory) h.appendChild(el("span", "qa-n", "with " + c.memory));
    a.appendChild(h);
    var dl = el("dl", "qa-card-facts");
    if (c.tg_terms && ramType) {
      figure(dl, "Generation (tg)", offloadTg(c.tg_terms, ramType.gbs, ramType.label));
    } else if (c.speed) {
      row(dl, "Speed", c.speed);
    } else {
      figure(dl, "Generation (tg)", c.tg, [c.tg_label]);
      figure(dl, "Prompt (pp)", c.pp, [c.pp_label]);
    }
    if (c.placement) row(dl, "Placement", c.placement);
    row(dl, c.placement ? "Context" : "Largest context", c.ctx);
    row(dl, "File", c.size + " (computed from the model's tensors and llama-quantize's rules)");
    row(dl, "Source", "estimated from the speed and memory models · model facts: " + c.facts);
    Array.prototype.forEach.call(dl.querySelectorAll(".qa-v"), function (v) { v.classList.add("qa-est"); });
    a.appendChild(dl);
    if (ram && c.ram_gb && c.ram_gb > ram) {
      a.appendChild(el("p", "qa-card-warn", "The experts this placement keeps in system RAM (" + c.ram_gb + " GB) are more than the " + ram + " GB of system RAM you entered."));
    }
    commandBlock(a, c.command, c.command_origin);
    var link = el("a", null, "The device page's estimate table");
    link.href = href;
    a.appendChild(link);
    return a;
  }

  function findModel(models, query) {
    var q = norm(query);
    if (!q) return [];
    var exact = models.filter(function (m) { return norm(m.label) === q || m.model === q || m.slug === q; });
    if (exact.length) return exact;
    return models.filter(function (m) { return norm(m.label).indexOf(q) >= 0; });
  }

  function findDevice(devices, query) {
    var q = norm(query);
    if (!q) return null;
    var best = null;
    devices.forEach(function (d) {
      var label = norm(d.label);
      if (label === q || d.slug === q) best = best || d;
    });
    if (best) return best;
    var hits = devices.filter(function (d) { return norm(d.label).indexOf(q) >= 0; });
    hits.sort(function (a, b) { return (b.has_data - a.has_data) || (a.label.length - b.label.length); });
    return hits[0] || null;
  }

  function setup(box) {
    if (box.getAttribute("data-qa-setup")) return;  // instant navigation may announce a page twice
    box.setAttribute("data-qa-setup", "1");
    var root = box.getAttribute("data-root") || "./";
    var form = box.querySelector("form");
    var out = box.querySelector(".qa-picker-out");
    var gpuIn = box.querySelector("[name=gpu]");
    var countIn = box.querySelector("[name=count]");
    var ramIn = box.querySelector("[name=ram]");
    var ramTypeIn = box.querySelector("[name=ramtype]");
    var modelIn = box.querySelector("[name=model]");
    var index = null;
    getJSON(root + "answers/index.json").then(function (ix) {
      index = ix;
      var gl = box.querySelector("#" + gpuIn.getAttribute("list"));
      ix.devices.forEach(function (d) { var o = el("option"); o.value = d.label; gl.appendChild(o); });
      var ml = box.querySelector("#" + modelIn.getAttribute("list"));
      ix.models.forEach(function (m) { var o = el("option"); o.value = m.label; ml.appendChild(o); });
      box.classList.add("qa-ready");
      if (gpuIn.value && modelIn.value) answer();
    }).catch(function () {
      out.textContent = "The answers could not be loaded; the device and model pages have them as text.";
    });

    function answer() {
      out.textContent = "";
      if (!index) return;
      var dev = findDevice(index.devices, gpuIn.value);
      if (!dev) {
        out.appendChild(el("p", "qa-missing", "No device named \"" + gpuIn.value + "\" is known here: pick one from the list (the device catalog names every GPU it knows)."));
        return;
      }
      var n = parseInt(countIn.value || "1", 10) || 1;
      var slug = n > 1 ? n + "x-" + dev.slug.replace(/^\d+x-/, "") : dev.slug;
      var ram = parseFloat(ramIn.value || "0") || 0;
      var opt = ramTypeIn && ramTypeIn.selectedIndex > 0 ? ramTypeIn.options[ramTypeIn.selectedIndex] : null;
      var ramType = opt ? {gbs: parseFloat(opt.value), label: opt.textContent} : null;
      var gpuMem = dev.memory_gb ? dev.memory_gb * n : 0;
      var memory = gpuMem && ram ? gpuMem + ram : 0;
      getJSON(root + "answers/d/" + slug + ".json").then(function (d) {
        var hits = findModel(d.models, modelIn.value);
        var estimated = findModel(d.estimates || [], modelIn.value);
        var head = el("p", "qa-picker-head");
        var a = el("a", null, d.label);
        a.href = root + d.href;
        head.appendChild(a);
        out.appendChild(head);
        if (!hits.length) {
          var known = d.models.length ? "Models that have figures here: " + d.models.map(function (m) { return m.label; }).join(", ") + "." : "No model has a figure here yet.";
          out.appendChild(el("p", "qa-missing", "No figure of \"" + modelIn.value + "\" is measured or stated for this device. " + known));
          if (!estimated.length && (d.estimates || []).length) {
            out.appendChild(el("p", "qa-missing", "Estimated for this device: " + d.estimates.map(function (m) { return m.label; }).join(", ") + "."));
          }
        }
        hits.slice(0, 3).forEach(function (m) {
          var h = el("h3", null, m.label + " · " + m.tier_words);
          out.appendChild(h);
          m.cards.forEach(function (c) { out.appendChild(card(c, root, memory)); });
        });
        estimated.slice(0, 3).forEach(function (m) {
          out.appendChild(el("h3", "qa-est-head", m.label + " · estimated, not measured"));
          out.appendChild(el("p", "qa-n", "Computed from the speed and memory models (the Methodology page has their held-out errors); never ranked with measured or stated figures."));
          m.cards.forEach(function (c) { out.appendChild(estimateCard(c, root + d.href + "#what-fits-and-how-fast-estimated", ram, ramType)); });
        });
      }).catch(function () {
        out.appendChild(el("p", "qa-missing", "Nothing is measured or stated for " + (n > 1 ? n + "x " : "") + dev.label + " yet" + (n > 1 ? " (try one GPU)" : "") + ": no run of any model on it is in the data. The device catalog has its memory and bandwidth."));
      });
    }

    form.addEventListener("submit", function (e) { e.preventDefault(); answer(); });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll(".qa-picker"), setup);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
  if (window.document$ && window.document$.subscribe) window.document$.subscribe(init);  // Material's instant pages
})();
