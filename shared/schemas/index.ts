/** The wire protocol's payload schemas: one import for every process. */
export * from './node.js';
export * from './task.js';
export * from './request.js';
export * from './ha.js';
