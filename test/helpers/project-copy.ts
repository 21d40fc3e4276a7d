// A copy of the project's sources in a temp folder (its node_modules linked), so that `npm start`
// there builds a dist/ of its own: test files that start the server the README's way run side by
// side without two builds writing one dist/.
import { copyFileSync, cpSync, realpathSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { tempDir } from './database.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export function copyProject(prefix = 'authgate-tree-'): { path: string; cleanup(): void } {
  const tree = tempDir(prefix)
  for (const folder of ['src', 'scripts'])
    cpSync(join(ROOT, folder), join(tree.path, folder), { recursive: true })
  for (const file of ['package.json', 'tsconfig.json', 'tsconfig.build.json']) {
    copyFileSync(join(ROOT, file), join(tree.path, file))
  }
  symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(tree.path, 'node_modules'))
  return tree
}
