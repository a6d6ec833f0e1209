import { encodeRecord, type AgentPhase, type AgentReport, type Keyspace } from '../../keyspace/index.js';
import type { Logger } from '../../log/logger.js';

/** The registrar's part used here: puts that die with this host's lease. */
export interface LeasedWriter {
  putUnderLease(key: string, value: string): Promise<void>;
}

export type ReportInput = Pick<AgentReport, 'volumeId' | 'unit' | 'generation' | 'phase' | 'mountActive' | 'unitActive'> & {
  error?: string | null;
};

/**
 * Writes `status/<self>/<volumeId>` under the host lease. The last report of each volume is kept: a
 * write that fails while etcd is unreachable is retried by `flush()` when the registrar registers
 * again, and a new lease (the old one expired with its keys) gets every report re-written.
 */
export class Reporter {
  private readonly last = new Map<string, AgentReport>();
  private readonly unsent = new Set<string>();

  constructor(
    private readonly writer: LeasedWriter,
    private readonly ks: Keyspace,
    private readonly instanceId: string,
    private readonly log: Logger,
  ) {}

  /** Records and sends a report; never throws (a failed send is retried by `flush`). */
  async report(input: ReportInput): Promise<AgentReport> {
    const record: AgentReport = {
      instanceId: this.instanceId,
      volumeId: input.volumeId,
      unit: input.unit,
      generation: input.generation,
      phase: input.phase,
      mountActive: input.mountActive,
      unitActive: input.unitActive,
      error: input.error ?? null,
      at: Date.now(),
    };
    this.last.set(record.volumeId, record);
    this.unsent.add(record.volumeId);
    await this.send(record);
    return record;
  }

  lastReport(volumeId: string): AgentReport | undefined {
    return this.last.get(volumeId);
  }

  lastPhase(volumeId: string): AgentPhase | undefined {
    return this.last.get(volumeId)?.phase;
  }

  /** Re-sends reports: all of them after a new lease (`all`), otherwise the ones that failed. */
  async flush(all: boolean): Promise<void> {
    const volumeIds = all ? [...this.last.keys()] : [...this.unsent];
    await Promise.all(
      volumeIds.map(async (volumeId) => {
        const record = this.last.get(volumeId);
        if (!record) return;
        this.unsent.add(volumeId);
        await this.send(record);
      }),
    );
  }

  private async send(record: AgentReport): Promise<void> {
    try {
      await this.writer.putUnderLease(this.ks.status(this.instanceId, record.volumeId), encodeRecord(record));
      // Only clear when the record sent is still the latest one for the volume.
      if (this.last.get(record.volumeId) === record) this.unsent.delete(record.volumeId);
    } catch (err) {
      this.log.warn({ err, volumeId: record.volumeId, phase: record.phase }, 'agent report not written; will retry when etcd is back');
    }
  }
}
