#!/usr/bin/env node
import { runCli } from './program.js';

// Daemons (controller, agent) resolve only when they stop; then the exit code is theirs.
const code = await runCli(process.argv.slice(2));
process.exit(code);
