import { z } from 'zod';

/**
 * fleet API v1 shapes (coreos/fleet Documentation/api-v1.md). Responses are validated with zod at the
 * edge: fleet versions differ in optional fields, so unknown fields are ignored and optional ones defaulted.
 */
export const FleetMachine = z.object({
  id: z.string().min(1),
  primaryIP: z.string().default(''),
  metadata: z.record(z.string(), z.string()).default({}),
});
export type FleetMachine = z.infer<typeof FleetMachine>;

export const MachinePage = z.object({
  machines: z.array(FleetMachine).default([]),
  nextPageToken: z.string().optional(),
});

export const FleetUnitState = z.object({
  name: z.string().min(1),
  hash: z.string().default(''),
  machineID: z.string().default(''),
  systemdLoadState: z.string().default(''),
  systemdActiveState: z.string().default(''),
  systemdSubState: z.string().default(''),
});
export type FleetUnitState = z.infer<typeof FleetUnitState>;

export const StatePage = z.object({
  states: z.array(FleetUnitState).default([]),
  nextPageToken: z.string().optional(),
});

export const UnitOption = z.object({ section: z.string().min(1), name: z.string().min(1), value: z.string() });
export type UnitOption = z.infer<typeof UnitOption>;

export const DesiredState = z.enum(['inactive', 'loaded', 'launched']);
export type DesiredState = z.infer<typeof DesiredState>;

export const FleetUnit = z.object({
  name: z.string().min(1),
  options: z.array(UnitOption).default([]),
  desiredState: DesiredState,
  currentState: DesiredState.optional(),
  machineID: z.string().optional(),
});
export type FleetUnit = z.infer<typeof FleetUnit>;

/**
 * One JSON Patch operation of `PATCH /fleet/v1/machines`. fleet wraps metadata values in an object
 * (`{"value": "vol-…"}`), not a bare string.
 */
export const MetadataOp = z.discriminatedUnion('op', [
  z.object({ op: z.enum(['add', 'replace']), path: z.string(), value: z.object({ value: z.string() }) }),
  z.object({ op: z.literal('remove'), path: z.string() }),
]);
export type MetadataOp = z.infer<typeof MetadataOp>;

/** `/<machineId>/metadata/<key>`: fleet's JSON Patch path for one metadata key. */
export const METADATA_PATH = /^\/([^/]+)\/metadata\/([^/]+)$/;
export function metadataPath(machineId: string, key: string): string {
  return `/${machineId}/metadata/${key}`;
}

/** The subset the agent and the controller depend on; `FleetClient` implements it. */
export interface FleetPort {
  listMachines(): Promise<FleetMachine[]>;
  setMetadata(machineId: string, key: string, value: string): Promise<void>;
  removeMetadata(machineId: string, key: string): Promise<void>;
  getState(filter?: { machineId?: string; unitName?: string }): Promise<FleetUnitState[]>;
}
