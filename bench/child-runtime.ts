import type { ChildMessage, CommandHandlers, ParentMessage } from './protocol.js';

function send(message: ChildMessage): void {
  process.send!(message);
}

/** Answers the driver's commands and announces `url`; the child lives until the driver lets go. */
export function serveCommands<C>(url: string, handlers: CommandHandlers<C>): void {
  if (!process.send)
    throw new Error('bench children must be started by bench/run.ts (they need an IPC channel)');
  process.on('message', (message: ParentMessage) => {
    // process.exit (not a kill) lets --cpu-prof write its profile.
    if (message.type === 'exit') process.exit(0);
    const handler = (handlers as Record<string, (() => unknown) | undefined>)[message.command];
    const { id } = message;
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown command ${message.command}`);
        return handler();
      })
      .then(
        (value) => send({ type: 'reply', id, value }),
        (error: unknown) => send({ type: 'failed', id, error: String(error) }),
      );
  });
  // A driver that crashed or was killed must not leave its children behind.
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready', url });
}
