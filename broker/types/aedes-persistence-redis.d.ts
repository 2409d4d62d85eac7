/**
 * aedes-persistence-redis ships no types: a factory taking ioredis options (plus its own
 * `maxSessionDelivery`, `packetTTL`, `conn`, `cluster`) and returning an Aedes persistence.
 */
declare module 'aedes-persistence-redis' {
  function aedesPersistenceRedis(opts?: Record<string, unknown>): unknown;
  export default aedesPersistenceRedis;
}
