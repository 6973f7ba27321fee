import type { AttributeValue, ScanCommandInput, ScanCommandOutput } from '@aws-sdk/client-dynamodb';

/*
 * A table for aws-sdk-client-mock's ScanCommand: each segment holds a number of pages of items
 * keyed `s<segment>#<index>`, and answers a Scan by its Segment and ExclusiveStartKey like DynamoDB
 * (a LastEvaluatedKey on every page but a segment's last). Every request is recorded.
 */

export interface FakeScanTable {
  /** The answer to one Scan request (for `mock.on(ScanCommand).callsFake`). */
  answer(input: ScanCommandInput): ScanCommandOutput;
  /** Every request answered or asked so far, in order. */
  readonly requests: ScanCommandInput[];
  /** Every item's pk, in segment and page order. */
  allKeys(): string[];
}

export interface FakeScanTableOptions {
  /** Pages per segment; its length is TotalSegments. */
  pagesPerSegment: readonly number[];
  itemsPerPage?: number;
  /** ConsumedCapacity.CapacityUnits of each page. */
  rcuPerPage?: number;
}

export const scanItemKey = (segment: number, index: number): string => `s${segment}#${index}`;

export function fakeScanTable(options: FakeScanTableOptions): FakeScanTable {
  const { pagesPerSegment, itemsPerPage = 3, rcuPerPage = 2 } = options;
  const requests: ScanCommandInput[] = [];
  return {
    requests,
    answer(input) {
      requests.push(input);
      const segment = input.Segment ?? 0;
      const pages = pagesPerSegment[segment];
      if (pages === undefined || input.TotalSegments !== pagesPerSegment.length) {
        throw new Error(`fake scan table: unexpected Segment ${segment} of ${input.TotalSegments}`);
      }
      const after = input.ExclusiveStartKey?.['pk']?.S;
      const first = after === undefined ? 0 : Number(after.split('#')[1]) + 1;
      const page = Math.floor(first / itemsPerPage);
      const items: Record<string, AttributeValue>[] = [];
      for (let i = first; i < first + itemsPerPage && page < pages; i++) {
        items.push({ pk: { S: scanItemKey(segment, i) }, n: { N: String(i) } });
      }
      const last = items.at(-1);
      return {
        $metadata: {},
        Items: items,
        Count: items.length,
        ConsumedCapacity: { TableName: input.TableName, CapacityUnits: rcuPerPage },
        ...(page < pages - 1 &&
          last !== undefined && { LastEvaluatedKey: { pk: last['pk'] as AttributeValue } }),
      };
    },
    allKeys() {
      return pagesPerSegment.flatMap((pages, segment) =>
        Array.from({ length: pages * itemsPerPage }, (_, i) => scanItemKey(segment, i)),
      );
    },
  };
}
