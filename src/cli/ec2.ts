import type { Config } from '../config/index.js';
import type { Ec2Port } from '../ec2/types.js';
import type { Logger } from '../log/logger.js';

/**
 * The EC2 port for CLI commands. Imported lazily: the AWS SDK takes a noticeable share of start-up
 * time, and `status`, `service …` never need it. With a test endpoint and no region, any region will do.
 */
export async function openEc2(config: Config['aws'], log?: Logger): Promise<Ec2Port> {
  const { createEc2 } = await import('../ec2/index.js');
  const region = config.region ?? process.env.AWS_REGION ?? (config.endpoint ? 'us-east-1' : undefined);
  return createEc2({ region, endpoint: config.endpoint, ...(log ? { log } : {}) });
}
