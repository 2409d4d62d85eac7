/** Passwords never on argv (`ps` shows it to every user): `cutter server` refuses them, naming where they go. */
import { describe, expect, it } from 'vitest';
import { refusePasswordsOnArgv } from '../../cli/commands/server.js';

describe('passwords on argv', () => {
  it('refuses --ha-password, naming --ha-token-file and CUTTER_HA_PASSWORD', () => {
    expect(() => refusePasswordsOnArgv({ haPassword: 'x' })).toThrow(/--ha-password is not accepted.*--ha-token-file.*CUTTER_HA_PASSWORD/);
  });
  it('refuses user:password@ in --broker and --ha-broker, and accepts URLs without a password', () => {
    expect(() => refusePasswordsOnArgv({ broker: 'mqtt://admin:s3cret@nas:1883' })).toThrow(
      /--broker must not carry a password.*CUTTER_PASSWORD/,
    );
    expect(() => refusePasswordsOnArgv({ haBroker: 'mqtt://u:p@ha:1883' })).toThrow(
      /--ha-broker must not carry a password.*--ha-token-file/,
    );
    expect(() => refusePasswordsOnArgv({ broker: 'mqtt://admin@nas:1883', haBroker: 'mqtts://ha:8883' })).not.toThrow();
  });
});
