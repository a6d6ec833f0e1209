/**
 * TLS checks before the first etcd call. gRPC reports a certificate problem as "14 UNAVAILABLE: No
 * connection established" and keeps retrying, so a daemon with a wrong CA or an expired certificate
 * would look like one waiting for etcd to come back. These checks turn such a configuration error
 * into one clear refusal naming the endpoint and the file to fix.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';

export interface EtcdTlsConfig {
  endpoints: readonly string[];
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
}

/** A TLS configuration etcd (or we) will never accept; retrying cannot help. */
export class EtcdTlsError extends Error {
  override readonly name = 'EtcdTlsError';
  constructor(
    readonly endpoint: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`TLS to etcd at ${endpoint} fails: ${reason}`, options);
  }
}

/** The CN of a certificate file's subject, or null (no file, unreadable, no CN). */
export function certificateCommonName(certFile: string | undefined): string | null {
  if (certFile === undefined) return null;
  try {
    const subject = new X509Certificate(readFileSync(certFile)).subject;
    return /^CN=(.*)$/m.exec(subject)?.[1] ?? null;
  } catch {
    return null;
  }
}

/**
 * The client certificate must be valid now: etcd would refuse an expired one with a bare TLS alert
 * ("bad certificate") that names neither the file nor the reason.
 */
export function checkClientCertificate(cfg: EtcdTlsConfig, now: number = Date.now()): void {
  if (cfg.certFile === undefined) return;
  const where = cfg.endpoints.join(', ');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(cfg.certFile));
  } catch (err) {
    throw new EtcdTlsError(where, `etcd.certFile ${cfg.certFile} is not a readable PEM certificate (${(err as Error).message})`, { cause: err });
  }
  const cn = /^CN=(.*)$/m.exec(cert.subject)?.[1] ?? '?';
  const notAfter = Date.parse(cert.validTo);
  const notBefore = Date.parse(cert.validFrom);
  if (now > notAfter) throw new EtcdTlsError(where, `the client certificate etcd.certFile ${cfg.certFile} (CN=${cn}) expired on ${new Date(notAfter).toISOString()}: etcd refuses it; issue a new one`);
  if (now < notBefore) throw new EtcdTlsError(where, `the client certificate etcd.certFile ${cfg.certFile} (CN=${cn}) is not valid before ${new Date(notBefore).toISOString()} (clock skew?)`);
}

/** OpenSSL's codes for "the server's chain does not lead to a CA we trust". */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED',
]);

/** Connection-level failures: etcd may simply not be up yet, which is not a TLS configuration error. */
const TRANSIENT = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);

/** Why a TLS handshake failed, in words that name the file to fix; null when not a TLS configuration error. */
export function describeTlsFailure(err: NodeJS.ErrnoException, cfg: EtcdTlsConfig): string | null {
  const code = err.code ?? '';
  const message = err.message;
  const ca = cfg.caFile !== undefined ? `etcd.caFile ${cfg.caFile}` : "the system's CA store (etcd.caFile is not set)";
  if (UNTRUSTED.has(code)) return `the server's certificate is not signed by a CA in ${ca} (${message})`;
  if (code === 'CERT_HAS_EXPIRED') return `the server's certificate has expired (${message})`;
  if (code === 'CERT_NOT_YET_VALID') return `the server's certificate is not valid yet (${message})`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the server's certificate does not name this host (${message})`;
  if (/alert certificate required|alert handshake failure/i.test(message) && cfg.certFile === undefined) {
    return `the server requires a client certificate (set etcd.certFile and etcd.keyFile) (${message})`;
  }
  if (/alert (bad certificate|certificate expired|unknown ca|certificate unknown|certificate revoked|unsupported certificate|certificate required)/i.test(message)) {
    return `the server refused our client certificate etcd.certFile ${cfg.certFile ?? '(none)'}: ${/alert [a-z ]+/i.exec(message)?.[0] ?? message}`;
  }
  if (/wrong version number|packet length too long/i.test(message)) return `the endpoint does not speak TLS (use http:// for it, or enable TLS in etcd) (${message})`;
  if (TRANSIENT.has(code) || /socket hang up|timed out/i.test(message)) return null;
  if (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || /SSL|TLS|certificate/i.test(message)) return message;
  return null;
}

/**
 * One HTTPS request to `<endpoint>/version` (served without auth) with the configured CA and client
 * certificate. Resolves when the handshake and request work or etcd cannot be reached at all (not up
 * yet: the caller's normal retries handle that); rejects with EtcdTlsError on a handshake etcd or we
 * refuse. Also makes the server read something after the handshake: with TLS 1.3 the server's verdict
 * on our certificate arrives only then.
 */
async function preflightOne(endpoint: string, cfg: EtcdTlsConfig, tls: { ca?: Buffer; cert?: Buffer; key?: Buffer }, timeoutMs: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const req = request(`${endpoint.replace(/\/+$/, '')}/version`, { ...tls, timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve());
      res.on('error', () => resolve());
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const reason = describeTlsFailure(err, cfg);
      if (reason === null) resolve();
      else reject(new EtcdTlsError(endpoint, reason, { cause: err }));
    });
    req.end();
  });
}

/** Checks the client certificate's dates, then the handshake with every https:// endpoint (in parallel). */
export async function tlsPreflight(cfg: EtcdTlsConfig, timeoutMs = 3_000): Promise<void> {
  checkClientCertificate(cfg);
  const secure = cfg.endpoints.filter((e) => e.startsWith('https://'));
  if (secure.length === 0) return;
  const tls = {
    ...(cfg.caFile !== undefined ? { ca: readFileSync(cfg.caFile) } : {}),
    ...(cfg.certFile !== undefined && cfg.keyFile !== undefined ? { cert: readFileSync(cfg.certFile), key: readFileSync(cfg.keyFile) } : {}),
  };
  await Promise.all(secure.map((endpoint) => preflightOne(endpoint, cfg, tls, timeoutMs)));
}
