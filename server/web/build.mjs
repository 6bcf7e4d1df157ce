// Builds the browser client into dist/: the page (index.html) and its hashed assets. The bundle is
// committed so that building the server needs no Node; `--check` rebuilds into a scratch folder
// and fails when the committed dist/ differs from what the sources produce (the test command
// runs it, so a source change without its rebuilt bundle cannot land).
//
// usage: node build.mjs            rebuild dist/
//        node build.mjs --check    compare dist/ with a fresh build; exit 1 on any difference
import * as esbuild from 'esbuild'
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join, relative } from 'node:path'

const here = new URL('.', import.meta.url).pathname
const dist = join(here, 'dist')

async function build (out) {
  rmSync(out, { recursive: true, force: true })
  mkdirSync(join(out, 'assets'), { recursive: true })
  const result = await esbuild.build({
    entryPoints: { app: join(here, 'src/main.js') },
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['chrome100', 'firefox100', 'safari15'],
    outdir: join(out, 'assets'),
    entryNames: '[name]-[hash]',
    chunkNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    // Language modes load on demand (dynamic imports) as chunks of their own.
    splitting: true,
    // The licences of the bundled packages go in one file beside the bundle.
    legalComments: 'linked',
    metafile: true,
    logLevel: 'warning',
    // Paths in the output must not depend on where the checkout lives.
    absWorkingDir: here
  })
  const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p))
  const js = outputs.find((f) => f.startsWith('app-') && f.endsWith('.js'))
  const css = outputs.find((f) => f.startsWith('app-') && f.endsWith('.css'))
  if (!js || !css) throw new Error(`the build made no app script or style sheet: ${outputs.join(', ')}`)
  const page = readFileSync(join(here, 'src/index.html'), 'utf8')
    .replaceAll('__APP_JS__', `/assets/${js}`)
    .replaceAll('__APP_CSS__', `/assets/${css}`)
  writeFileSync(join(out, 'index.html'), page)
  return out
}

/** Every file under `dir`, relative to it, sorted. */
function files (dir) {
  const found = []
  const walk = (d) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name)
      if (entry.isDirectory()) walk(path)
      else found.push(relative(dir, path))
    }
  }
  if (existsSync(dir)) walk(dir)
  return found.sort()
}

if (process.argv.includes('--check')) {
  const scratch = mkdtempSync(join(tmpdir(), 'codecrafter-web-'))
  try {
    const fresh = await build(join(scratch, 'dist'))
    const want = files(fresh)
    const have = files(dist)
    const differ = [...new Set([...want, ...have])].filter((f) =>
      !want.includes(f) || !have.includes(f) || !readFileSync(join(fresh, f)).equals(readFileSync(join(dist, f))))
    if (differ.length > 0) {
      console.error(`server/web/dist is not what the sources build: ${differ.join(', ')}`)
      console.error('run `npm run build --prefix server/web` and commit server/web/dist')
      process.exit(1)
    }
    console.log(`server/web/dist matches its sources (${want.length} files)`)
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
} else {
  await build(dist)
  console.log(`built ${files(dist).join(', ')}`)
}
