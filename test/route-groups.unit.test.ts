/**
 * Which route group a path belongs to (src/routing/route-groups.ts): a pure function, no sockets.
 * How the middleware mounts and forwards each group is in mounting.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AMP_GROUPS, classifyAmpPath, GROUP_MOUNT_PATH } from '../src/routing/route-groups.js';
import type { AmpGroup } from '../src/types.js';

describe('classifyAmpPath', () => {
  const table: ReadonlyArray<readonly [path: string, group: AmpGroup | undefined]> = [
    ['/api/provider', 'provider'],
    ['/api/provider/', 'provider'],
    ['/api/provider/anthropic/v1/messages', 'provider'],
    ['/api/providers', 'management'],
    ['/api/provider.json', 'management'],
    ['/api', 'management'],
    ['/api/', 'management'],
    ['/api/threads/T-1', 'management'],
    ['/api/internal', 'management'],
    ['/apis', undefined],
    ['/apiary', undefined],
    ['/actors', 'actors'],
    ['/actors/gateway/threadActor/websocket/', 'actors'],
    ['/actorsx', undefined],
    ['/threads', 'browser'],
    ['/threads/T-1', 'browser'],
    ['/threads.rss', 'browser'],
    ['/threads.json', undefined],
    ['/threadsafe', undefined],
    ['/news.rss', 'browser'],
    ['/news', undefined],
    ['/news.rss/x', undefined],
    ['/auth', 'browser'],
    ['/auth/cli-login', 'browser'],
    ['/authx', undefined],
    ['/docs', 'browser'],
    ['/docs/getting-started', 'browser'],
    ['/settings', 'browser'],
    ['/settings/keys', 'browser'],
    ['/', undefined],
    ['', undefined],
    ['/health', undefined],
    ['/static/api/threads', undefined],
  ];
  for (const [path, group] of table) {
    it(`${JSON.stringify(path)} -> ${String(group)}`, () => assert.equal(classifyAmpPath(path), group));
  }

  it('ignores case, so a case-insensitive upstream is never reached under a laxer policy', () => {
    assert.equal(classifyAmpPath('/API/Provider/anthropic'), 'provider');
    assert.equal(classifyAmpPath('/Api/Threads'), 'management');
    assert.equal(classifyAmpPath('/ACTORS/x'), 'actors');
    assert.equal(classifyAmpPath('/THREADS.RSS'), 'browser');
    assert.equal(classifyAmpPath('/Settings'), 'browser');
  });

  it('every group is reachable, and only the groups listed in AMP_GROUPS', () => {
    const seen = new Set(table.map(([, group]) => group).filter((group) => group !== undefined));
    assert.deepEqual([...seen].sort(), [...AMP_GROUPS].sort());
  });
});

describe('GROUP_MOUNT_PATH', () => {
  it("each single-group factory's mount point belongs to its group", () => {
    assert.equal(classifyAmpPath(GROUP_MOUNT_PATH.provider), 'provider');
    assert.equal(classifyAmpPath(GROUP_MOUNT_PATH.management), 'management');
  });
});
