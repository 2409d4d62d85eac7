/** Raw MQTT bytes for tests that speak the wire protocol by hand. */

/** MQTT's Remaining Length varint (MQTT 3.1.1 §2.2.3): 7 bits a byte, high bit = more follow. */
export function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}
