import assert from 'node:assert/strict';
import { afterEach, beforeEach } from 'node:test';

/**
 * Records every uncaught exception and unhandled rejection while installed, so that a test can
 * assert that none was reachable from what it sent (and the process is not ended by one).
 */
export function installTripwire(): { readonly caught: readonly unknown[]; remove(): void } {
  const caught: unknown[] = [];
  const record = (error: unknown): void => {
    caught.push(error);
  };
  process.on('uncaughtException', record);
  process.on('unhandledRejection', record);
  return {
    caught,
    remove() {
      process.off('uncaughtException', record);
      process.off('unhandledRejection', record);
    },
  };
}

/** Fails each test of the enclosing suite that let an uncaught exception or rejection through. */
export function tripwireEachTest(): void {
  let tripwire: ReturnType<typeof installTripwire>;
  beforeEach(() => {
    tripwire = installTripwire();
  });
  afterEach(() => {
    tripwire.remove();
    assert.deepEqual(tripwire.caught, [], 'an uncaught exception or unhandled rejection');
  });
}
