/**
 * A throwaway PKI for the security tests, made with openssl at test time (nothing is checked in):
 * a CA, a server certificate for 127.0.0.1, one client certificate per etcd identity (CN = the etcd
 * user name, which etcd takes as the user when auth is on), an expired client certificate, and a
 * second, unrelated CA (a client that trusts it must refuse the server).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const OPENSSL = process.env.OPENSSL_BIN ?? '/usr/bin/openssl';

export interface CertFiles {
  certFile: string;
  keyFile: string;
}

export interface TestPki {
  dir: string;
  /** The CA etcd trusts and that signed the server and client certificates. */
  caFile: string;
  /** A CA that signed nothing here: trusting it instead of caFile must fail the handshake. */
  otherCaFile: string;
  server: CertFiles;
  /** A client certificate with CN = `name` (made on first use). */
  client(name: string): CertFiles;
  /** A client certificate with CN = `name`, signed by the right CA, that expired in 2020. */
  expiredClient(name: string): CertFiles;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync(OPENSSL, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** EC P-256 keys: made in milliseconds, understood by etcd (Go) and grpc-js alike. */
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function makeCa(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  openssl(['req', '-x509', ...NEW_KEY, '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  chmodSync(key, 0o600);
  return { cert, key };
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'ebs-failover-pki-'));
  const ca = makeCa(dir, 'test-ca');
  const other = makeCa(dir, 'other-ca');
  let serial = 1000;

  const issue = (name: string, cn: string, ext: string, validity: { days: number } | { start: string; end: string }): CertFiles => {
    const keyFile = join(dir, `${name}.key`);
    const csr = join(dir, `${name}.csr`);
    const certFile = join(dir, `${name}.crt`);
    const extFile = join(dir, `${name}.ext`);
    writeFileSync(extFile, ext);
    openssl(['req', '-new', ...NEW_KEY, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${cn}`], dir);
    chmodSync(keyFile, 0o600);
    serial += 1;
    if ('days' in validity) {
      openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', String(serial), '-days', String(validity.days), '-extfile', extFile, '-out', certFile], dir);
    } else {
      // `openssl x509` cannot back-date; `openssl ca` takes explicit start and end dates.
      const db = join(dir, `${name}.index`);
      writeFileSync(db, '');
      const conf = join(dir, `${name}.cnf`);
      writeFileSync(
        conf,
        [
          '[ca]', 'default_ca = test', '[test]', `database = ${db}`, `new_certs_dir = ${dir}`, `serial = ${join(dir, `${name}.serial`)}`,
          'default_md = sha256', 'policy = any', 'unique_subject = no', 'copy_extensions = none', '[any]', 'commonName = supplied',
        ].join('\n'),
      );
      writeFileSync(join(dir, `${name}.serial`), `${serial.toString(16).padStart(4, '0')}\n`);
      openssl(['ca', '-batch', '-config', conf, '-cert', ca.cert, '-keyfile', ca.key, '-in', csr, '-out', certFile, '-notext',
        '-startdate', validity.start, '-enddate', validity.end, '-extfile', extFile], dir);
    }
    return { certFile, keyFile };
  };

  const server = issue('server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n', { days: 2 });
  const clients = new Map<string, CertFiles>();
  const clientExt = 'extendedKeyUsage=clientAuth\n';
  return {
    dir,
    caFile: ca.cert,
    otherCaFile: other.cert,
    server,
    client(name) {
      let files = clients.get(name);
      if (!files) {
        files = issue(`client-${name}`, name, clientExt, { days: 2 });
        clients.set(name, files);
      }
      return files;
    },
    expiredClient(name) {
      return issue(`expired-${name}`, name, clientExt, { start: '20200101000000Z', end: '20200102000000Z' });
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
