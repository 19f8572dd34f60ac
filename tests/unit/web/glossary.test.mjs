// Unit tests of web/glossary.js: run by tests/unit/web/test_web_units.py with node --test.
import test from "node:test";
import assert from "node:assert/strict";
import { formatGlossary, parseGlossary } from "../../../web/glossary.js";

test("lines become glossary_set entries", () => {
  const { entries, errors } = parseGlossary("Sintra = es: Sintra; fr: Sintra\n# note\n\nParley @en = keep\nUN @en = keep; es: ONU\n");
  assert.deepEqual(errors, []);
  assert.deepEqual(entries, [
    { term: "Sintra", lang: null, renderings: { es: "Sintra", fr: "Sintra" }, keep: false },
    { term: "Parley", lang: "en", renderings: {}, keep: true },
    { term: "UN", lang: "en", renderings: { es: "ONU" }, keep: true },
  ]);
});

test("mistakes are reported by line, and nothing else is lost", () => {
  const { entries, errors } = parseGlossary("good = es: bueno\nno equals sign\nx = es:\n = keep\ny = french: oui\nz =\n");
  assert.equal(entries.length, 1);
  assert.deepEqual(errors.map((e) => e.line), [2, 3, 4, 5, 6]);
});

test("format and parse round-trip", () => {
  const entries = [
    { term: "town of Sintra", lang: "en", renderings: { es: "villa de Sintra" }, keep: false },
    { term: "Parley", lang: null, renderings: {}, keep: true },
  ];
  assert.deepEqual(parseGlossary(formatGlossary(entries)).entries, entries);
});
