import { describe, expect, it } from 'vitest';
import { redisOptions } from '../../broker/cluster.js';

describe('redisOptions', () => {
  it('reads host, port, database and credentials from a redis:// URL', () => {
    expect(redisOptions('redis://10.0.0.5:6380/2')).toEqual({ host: '10.0.0.5', port: 6380, db: 2 });
    expect(redisOptions('redis://localhost')).toEqual({ host: 'localhost', port: 6379, db: 0 });
    expect(redisOptions('rediss://user:p%40ss@r.example/0')).toEqual({
      host: 'r.example',
      port: 6379,
      db: 0,
      username: 'user',
      password: 'p@ss',
      tls: {},
    });
  });
  it('refuses other schemes and bad database numbers with the key in the message', () => {
    expect(() => redisOptions('mqtt://x')).toThrow('redis = "mqtt://x": the scheme must be redis:// or rediss://');
    expect(() => redisOptions('redis://x/abc')).toThrow('"abc" is not a database number');
    expect(() => redisOptions('not a url')).toThrow('is not a URL');
  });
});
