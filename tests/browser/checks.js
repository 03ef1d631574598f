// Injected into every page the browser suite visits (tests/browser/checks.rs runs it as the body
// of a WebDriver script). It measures; the Rust side decides what is a problem. Returns:
//   { width, dark, lang, overflow: [..], contrast: [..], unlabelled: [..], skipped }
// Elements are named by tag, id and classes plus a few words of their text, so that a report
// points at the element without relying on the page's exact wording.

const probe = document.createElement("canvas").getContext("2d", { willReadFrequently: true });
const parsed = new Map();

// Any CSS colour (rgb(), oklch(), color-mix(), named...) as sRGB [r, g, b, a] in 0..255, 0..1:
// painted on a 1x1 canvas and read back, so the browser does the colour-space maths.
function rgba(css) {
  if (parsed.has(css)) return parsed.get(css);
  probe.clearRect(0, 0, 1, 1);
  probe.fillStyle = "rgba(0, 0, 0, 0)";
  probe.fillStyle = css;
  probe.fillRect(0, 0, 1, 1);
  const d = probe.getImageData(0, 0, 1, 1).data;
  const out = [d[0], d[1], d[2], d[3] / 255];
  parsed.set(css, out);
  return out;
}

function over(top, below) {
  const a = top[3];
  return [0, 1, 2].map((i) => top[i] * a + below[i] * (1 - a)).concat([1]);
}

// WCAG 2.x relative luminance and contrast ratio.
function luminance(c) {
  const [r, g, b] = c.slice(0, 3).map((v) => {
    const s = v / 255;
    return s <= 0.04045 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

function ratio(a, b) {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

function describe(el) {
  let name = el.tagName.toLowerCase();
  if (el.id) name += "#" + el.id;
  for (const c of el.classList) name += "." + c;
  const field = ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName);
  const text = String((field ? el.value : el.textContent) || "").trim().replace(/\s+/g, " ");
  return text ? `${name} "${text.length > 30 ? text.slice(0, 30) + "…" : text}"` : name;
}

function shown(el) {
  const cs = getComputedStyle(el);
  if (cs.visibility !== "visible" || el.getClientRects().length === 0) return false;
  const r = el.getBoundingClientRect();
  // Visually hidden text (the 1 px clip pattern) is for screen readers, not for the eye.
  return r.width > 1 && r.height > 1;
}

// The page's own background where no element paints one: the canvas, dark when the root's
// colour scheme is dark.
function canvasColour() {
  const scheme = getComputedStyle(document.documentElement).colorScheme || "";
  const dark = matchMedia("(prefers-color-scheme: dark)").matches;
  return scheme.includes("dark") && (dark || !scheme.includes("light")) ? [18, 18, 18, 1] : [255, 255, 255, 1];
}

// The colour behind `el`: its own and its ancestors' backgrounds blended down to the first opaque
// one. `null` when an image or gradient is in the way (then the ratio is unknown, not failed).
function background(el) {
  const layers = [];
  for (let n = el; n; n = n.parentElement) {
    const cs = getComputedStyle(n);
    if (cs.backgroundImage && cs.backgroundImage !== "none") return null;
    const c = rgba(cs.backgroundColor);
    if (c[3] > 0) {
      layers.push(c);
      if (c[3] >= 1) break;
    }
  }
  let colour = canvasColour();
  for (const layer of layers.reverse()) colour = over(layer, colour);
  return colour;
}

function opacity(el) {
  let o = 1;
  for (let n = el; n; n = n.parentElement) o *= parseFloat(getComputedStyle(n).opacity);
  return o;
}

function ownText(el) {
  if (["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName)) {
    const skip = ["hidden", "checkbox", "radio", "range", "color", "file", "image"];
    return !skip.includes(el.type) && (el.value || "").trim() !== "";
  }
  return [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim() !== "");
}

const contrast = [];
let skipped = 0;
for (const el of document.body.querySelectorAll("*")) {
  if (el.closest("svg, script, style, noscript, template") || el.disabled) continue;
  if (!ownText(el) || !shown(el)) continue;
  const cs = getComputedStyle(el);
  const bg = background(el);
  if (!bg) {
    skipped += 1;
    continue;
  }
  const fg = rgba(cs.color);
  const text = over([fg[0], fg[1], fg[2], fg[3] * opacity(el)], bg);
  const size = parseFloat(cs.fontSize);
  const large = size >= 24 || (size >= 18.66 && parseInt(cs.fontWeight, 10) >= 700);
  const need = large ? 3 : 4.5;
  const got = ratio(text, bg);
  if (got < need) {
    const hex = (c) => "#" + c.slice(0, 3).map((v) => Math.round(v).toString(16).padStart(2, "0")).join("");
    contrast.push(`${describe(el)}: ${got.toFixed(2)}:1 (${hex(text)} on ${hex(bg)}, needs ${need}:1)`);
  }
}

const width = window.innerWidth;
const overflow = [];
const root = document.documentElement;
if (root.scrollWidth > width) overflow.push(`documentElement.scrollWidth ${root.scrollWidth} > innerWidth ${width}`);
if (document.body.scrollWidth > width) overflow.push(`body.scrollWidth ${document.body.scrollWidth} > innerWidth ${width}`);
if (overflow.length) {
  // Name the widest culprits: elements reaching past the right edge.
  const past = [...document.body.querySelectorAll("*")]
    .filter((el) => shown(el) && el.getBoundingClientRect().right > width + 0.5)
    .sort((a, b) => b.getBoundingClientRect().right - a.getBoundingClientRect().right)
    .slice(0, 3)
    .map((el) => `${describe(el)} reaches ${Math.round(el.getBoundingClientRect().right)} px`);
  overflow.push(...past);
}

const unlabelled = [];
const buttonTypes = ["hidden", "submit", "button", "reset", "image"];
for (const el of document.querySelectorAll("input, select, textarea")) {
  if (buttonTypes.includes(el.type) || !shown(el)) continue;
  const aria = (el.getAttribute("aria-label") || "").trim() !== "";
  const by = (el.getAttribute("aria-labelledby") || "")
    .split(/\s+/)
    .some((id) => id && document.getElementById(id));
  if (el.labels.length === 0 && !aria && !by) unlabelled.push(describe(el) + (el.name ? ` name=${el.name}` : ""));
}

return {
  width,
  dark: matchMedia("(prefers-color-scheme: dark)").matches,
  lang: root.lang || "",
  overflow,
  contrast,
  unlabelled,
  skipped,
};
