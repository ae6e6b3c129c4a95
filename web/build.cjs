// Bundles web/src into one index.html (scripts/web-build runs it with
// NODE_PATH set to the npm packages of the build tree): the script and the
// styles inline, because Mosquitto's http_dir sends files without a
// Content-Type and one request is the fastest first load anyway.
'use strict';
const esbuild = require('esbuild');
const fs = require('fs');
const path = require('path');

const out = process.argv[2];
if (!out) {
  console.error('usage: node build.cjs OUT_DIR');
  process.exit(2);
}
const src = path.join(__dirname, 'src');
const result = esbuild.buildSync({
  entryPoints: [path.join(src, 'app.js')],
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['chrome100', 'firefox100', 'safari15'],
  minify: true,
  legalComments: 'eof',
  write: false,
  nodePaths: (process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean),
  logLevel: 'warning',
});
// "</script" cannot appear inside an inline script
const script = result.outputFiles[0].text.replace(/<\/script/gi, '<\\/script');
const style = fs.readFileSync(path.join(src, 'style.css'), 'utf8');
const html = fs.readFileSync(path.join(src, 'index.html'), 'utf8')
  .replace('/*STYLE*/', () => style)
  .replace('/*SCRIPT*/', () => script);
fs.mkdirSync(out, { recursive: true });
const tmp = path.join(out, '.index.html.tmp');
fs.writeFileSync(tmp, html);
fs.renameSync(tmp, path.join(out, 'index.html'));
console.log(`web: ${path.join(out, 'index.html')} (${html.length} bytes)`);
