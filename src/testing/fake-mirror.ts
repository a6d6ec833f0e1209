import { EventEmitter } from 'node:events';
import type { MirrorLike } from '../controller/etcd-store.js';

/** A PrefixMirror double for EtcdStore unit tests: `map` is what the watch has delivered so far. */
export class FakeMirror extends EventEmitter implements MirrorLike {
  readonly map = new Map<string, string>();
  entries(): Map<string, string> {
    return this.map;
  }

  get(key: string): string | undefined {
    return this.map.get(key);
  }
}
