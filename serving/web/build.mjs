// The whole front-end build: esbuild bundles src/main.js (with uPlot) and src/styles.css (with uPlot's
// CSS) into dist/app.{js,css}, and the script-tag loader into dist/widget.js. No CDN at run time: the
// API serves these files itself.
import { mkdir, readFile, rm } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

const common = { bundle: true, minify: true, legalComments: 'eof', logLevel: 'warning', target: ['es2020', 'chrome100', 'firefox100', 'safari15'] };

await rm('dist', { recursive: true, force: true });
await mkdir('dist');
await Promise.all([
  esbuild.build({ ...common, entryPoints: { app: 'src/main.js' }, format: 'esm', outdir: 'dist' }),
  esbuild.build({ ...common, entryPoints: { app: 'src/styles.css' }, outdir: 'dist' }),
  esbuild.build({ ...common, entryPoints: { widget: 'src/loader.js' }, format: 'iife', outdir: 'dist' }),
]);
for (const name of ['app.js', 'app.css', 'widget.js']) {
  const body = await readFile(`dist/${name}`);
  console.log(`dist/${name.padEnd(10)} ${String(body.length).padStart(7)} B  ${String(gzipSync(body, { level: 9 }).length).padStart(6)} B gzipped`);
}
