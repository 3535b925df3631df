#!/usr/bin/env node
'use strict';
// Development entry point: runs the TypeScript sources through tsx (a devDependency).
// Boards run the esbuild bundle dist/edgehead.cjs instead, which needs no node_modules.
require('tsx/cjs');
require('../cli/main.ts').main(process.argv.slice(2));
