#!/usr/bin/env node
// The `authgate` binary (package.json "bin"; cluster workers are forked from it too): the program
// in program.ts, run on this process's arguments, environment and streams.
import './v8-flags.js'
import { loadDotEnv } from '../config.js'
import { runCli } from './program.js'

const code = await runCli(process.argv.slice(2), {
  env: process.env,
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  loadDotEnv,
})
// `serve` resolves once listening and keeps running; a failure sets the code the process ends with.
if (code !== 0) process.exitCode = code
