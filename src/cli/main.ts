#!/usr/bin/env node
import { runCli } from './program.js';

// The AWS SDK prints an 8-line NodeVersionSupportWarning on every EC2 command under Node 20 about SDK
// versions not yet released (the lockfile pins ours, which supports Node 20). Off unless the operator
// asks for it by setting the variable to anything else.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// Daemons (controller, agent) resolve only when they stop; then the exit code is theirs.
const code = await runCli(process.argv.slice(2));
process.exit(code);
