import type { EventEmitter } from 'node:events';

/**
 * Starts a listen/bind and settles with it: an error before it is bound rejects (port in
 * use, say); errors after that are only logged, so a serving socket never takes the process down.
 */
export async function bound(emitter: EventEmitter, start: (ready: () => void) => void, onLaterError: (err: Error) => void): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    emitter.once('error', reject);
    start(() => {
      emitter.removeListener('error', reject);
      resolve();
    });
  });
  emitter.on('error', onLaterError);
}
