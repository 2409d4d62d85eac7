/** The wire protocol's payload schemas: one import for every process. */
export * from './node.js';
export * from './task.js';
export * from './assignment.js';
export * from './request.js';
export * from './kept-output.js';
export * from './rejection.js';
export * from './files.js';
export * from './ports.js';
export * from './pipeline.js';
export * from './ha.js';
export * from './stdin.js';
export * from './placement.js';
export * from './output-credit.js';
export * from './volumes.js';
export * from './lending.js';
export * from './io.js';
export * from './wake.js';
