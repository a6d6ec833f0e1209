// The launcher lives in src/demo (the demo ships it); tests use the same one.
export * from '../../src/demo/etcd-server.js';
