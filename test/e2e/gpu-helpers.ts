/**
 * Helpers of the GPU end-to-end tests: the agent environment that puts the repo's nvidia-smi
 * double (test/fixtures/gpu/bin/nvidia-smi, a double of NVIDIA's documented `--query-gpu … --format=csv`
 * interface: no GPU exists here) first on PATH, and the UUIDs of its two-GPU fixture.
 */
import { join } from 'node:path';
import { ROOT } from '../harness.js';

/** The fixture's GPUs (test/fixtures/gpu/two-gpus.json), index 0 and 1. */
export const GPU_A = 'GPU-8f6e2c1a-3b4d-4e5f-9a0b-1c2d3e4f5a6b';
export const GPU_B = 'GPU-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';

/** The agent's environment: the nvidia-smi double first on PATH, reading the two-GPU fixture. */
export const GPU_AGENT_ENV: NodeJS.ProcessEnv = {
  PATH: `${join(ROOT, 'test/fixtures/gpu/bin')}:${process.env.PATH}`,
  CUTTER_TEST_NVIDIA_SMI: join(ROOT, 'test/fixtures/gpu/two-gpus.json'),
};
