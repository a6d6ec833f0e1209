export * from './keys.js';
export * from './records.js';
export * from './decode.js';
export * from './record-cache.js';
