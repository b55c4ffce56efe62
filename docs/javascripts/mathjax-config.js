// MathJax 2.7 settings for pymdownx.arithmatex's "generic" output: \( \) and \[ \]
// inside elements of class "arithmatex", and nowhere else (code blocks keep their $).
// MathJax itself is copied into site/assets/mathjax/ by docs/hooks/mathjax.py.
// The wheel ships the combined configuration TeX-AMS-MML_HTMLorMML-full (TeX input,
// HTML-CSS output built in) and the STIX-Web web fonts, and no SVG output.
window.MathJax = {
  config: ["TeX-AMS-MML_HTMLorMML-full.js"],
  jax: ["input/TeX", "output/HTML-CSS"],
  extensions: ["tex2jax.js"],
  TeX: { extensions: ["AMSmath.js", "AMSsymbols.js", "noErrors.js", "noUndefined.js"] },
  tex2jax: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: false,
    processEnvironments: false,
    ignoreClass: ".*",
    processClass: "arithmatex"
  },
  "HTML-CSS": {
    availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null
  },
  showMathMenu: false,
  messageStyle: "none"
};
