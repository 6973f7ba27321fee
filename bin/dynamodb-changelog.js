#!/usr/bin/env node
// Runs the compiled CLI (npm install / npm ci build dist/ through the prepare script).
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv);
