import type { CheckStatus } from '../shared/model.js';

const rank: Record<CheckStatus, number> = { passing: 0, warning: 1, critical: 2 };

/** Consul aggregates check states "worst wins": critical > warning > passing. */
export function worstStatus(statuses: readonly CheckStatus[]): CheckStatus {
  let worst: CheckStatus = 'passing';
  for (const s of statuses) if (rank[s] > rank[worst]) worst = s;
  return worst;
}
