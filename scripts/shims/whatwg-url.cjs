// Bundle shim for whatwg-url (pulled in by tfjs-core -> node-fetch@2). node-fetch only falls back to it when
// require('url').URL is missing, which never happens on Node >= 10; the real package and its tr46 Unicode
// tables added 0.3 MB to dist/edgehead.cjs. scripts/build.ts aliases it here.
'use strict';
module.exports = { URL: require('url').URL };
