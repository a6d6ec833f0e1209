import type { QueryParams } from '../protocol.js';
import type { Ec2Sim } from '../sim.js';
import type { XmlNode } from '../xml.js';

/** One EC2 action: reads the query parameters, acts on the simulator, returns the response body. */
export type ActionHandler = (sim: Ec2Sim, params: QueryParams) => XmlNode[];
