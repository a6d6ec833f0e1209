/**
 * Runs the EC2 endpoint as its own process:
 *   tsx src/sim/ec2/main.ts --port 0 --seed seed.json [--host 127.0.0.1] [--time-scale 0.01] [--no-throttle]
 *     [--real-volumes DIR]   (volumes are ext4 images in DIR, attachments loop devices: src/sim/ec2/real-volumes.ts)
 * Prints `{"url":"http://127.0.0.1:<port>"}` as one line on stdout once listening; logs go to stderr.
 */
import { parseArgs } from 'node:util';
import { createLogger } from '../../log/logger.js';
import { RealBlockDevices } from './real-volumes.js';
import { applySeed, loadSeedFile } from './seed.js';
import { startEc2Endpoint } from './server.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      seed: { type: 'string' },
      'time-scale': { type: 'string' },
      'no-throttle': { type: 'boolean', default: false },
      // Real volumes (issue 11): every volume an ext4 image in DIR, attachments real loop devices.
      'real-volumes': { type: 'string' },
    },
    strict: true,
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new Error(`--port: expected 0-65535, got ${values.port}`);
  const log = createLogger('ec2-sim');
  const devices = values['real-volumes'] === undefined ? undefined : new RealBlockDevices({ imagesDir: values['real-volumes'], log: (msg, fields) => log.info(fields, msg) });
  const endpoint = await startEc2Endpoint({ port, host: values.host, log, ...(devices ? { devices } : {}) });
  if (values.seed !== undefined) applySeed(endpoint.sim, await loadSeedFile(values.seed));
  if (values['time-scale'] !== undefined) endpoint.sim.setTimeScale(Number(values['time-scale']));
  if (values['no-throttle']) endpoint.sim.setThrottle({ enabled: false });
  process.stdout.write(`${JSON.stringify({ url: endpoint.url })}\n`);
  log.info({ url: endpoint.url }, 'ec2 sim listening');
  const stop = (): void => {
    void endpoint.close().then(() => {
      devices?.close();
      process.exit(0);
    });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`ec2-sim: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
