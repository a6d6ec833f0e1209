// The launcher lives in src/testing (the demo, bench and the chaos campaign start it too); tests use the same one.
export * from '../../src/testing/etcd-server.js';
