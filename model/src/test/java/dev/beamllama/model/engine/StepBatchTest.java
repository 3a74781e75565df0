package dev.beamllama.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

import dev.beamllama.model.sampling.SamplingParams;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The step's layout, as every runner reads it: rows, positions, slots through scattered block tables, and the sampled rows. */
class StepBatchTest {
  /** A sequence whose prompt is 100, 101, ... and whose cache blocks are {@code blocks}. */
  private static Sequence sequence(int promptLength, int... blocks) {
    int[] prompt = new int[promptLength];
    Arrays.setAll(prompt, i -> 100 + i);
    Sequence seq = new Sequence(new GenerationRequest("s" + promptLength, prompt, SamplingParams.greedy(4)), 64, null);
    for (int block : blocks) {
      seq.blockTable().add(block);
    }
    return seq;
  }

  @Test
  void aPrefillChunkAndDecodeRowsLayOutThroughTheirBlockTables() {
    Sequence prefill = sequence(10, 7, 2, 5); // blocks of 4: positions 8.. live in block 5
    Sequence decode = sequence(6, 3, 0);
    decode.markComputed(5);
    Sequence partial = sequence(9, 1, 4, 6);
    StepBatch batch = new StepBatch(16, 4, 4, 12);
    // prefill rows 3..9 (ending its prompt: samples), decode position 5, the first 3 rows of another prompt (no sample)
    batch.prepare(List.of(new ScheduledChunk(prefill, 3, 7, true), new ScheduledChunk(decode, 5, 1, true),
        new ScheduledChunk(partial, 0, 3, false)), List.of());

    assertEquals(11, batch.rows());
    assertEquals(3, batch.sequences());
    assertArrayEquals(new int[] {103, 104, 105, 106, 107, 108, 109, 105, 100, 101, 102}, Arrays.copyOf(batch.tokens(), 11));
    assertArrayEquals(new int[] {3, 4, 5, 6, 7, 8, 9, 5, 0, 1, 2}, Arrays.copyOf(batch.positions(), 11));
    // slot = block * 4 + offset: prefill 3 -> block 7 offset 3; 4..7 -> block 2; 8, 9 -> block 5; decode 5 -> block 0 offset 1
    assertArrayEquals(new int[] {31, 8, 9, 10, 11, 20, 21, 1, 4, 5, 6}, Arrays.copyOf(batch.slots(), 11));
    assertArrayEquals(new int[] {0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 2}, Arrays.copyOf(batch.rowSequence(), 11));
    assertEquals(3, batch.maxBlocks());
    assertArrayEquals(new int[] {7, 2, 5, 3, 0}, new int[] {batch.blockTables()[0], batch.blockTables()[1], batch.blockTables()[2],
        batch.blockTables()[3], batch.blockTables()[4]});
    assertArrayEquals(new int[] {3, 2, 3}, Arrays.copyOf(batch.tableLengths(), 3));
    assertEquals(2, batch.samples());
    assertArrayEquals(new int[] {6, 7}, Arrays.copyOf(batch.sampleRows(), 2));
    assertSame(prefill, batch.sequence(0));
    assertSame(decode, batch.sequence(1));

    batch.prepare(List.of(new ScheduledChunk(decode, 5, 1, true)), List.of());
    assertEquals(1, batch.rows());
    assertEquals(1, batch.samples());
    assertSame(decode, batch.sequence(0));
    assertNull(batch.sequence(1), "nothing of the previous step is left");
  }

  @Test
  void aPromptChunkWantsEveryRowsLogitsOverBlocksInOrder() {
    int[] ids = {5, 6, 7, 8, 9, 10, 11};
    StepBatch batch = StepBatch.prompt(ids, 4, 3, 2);
    assertEquals(3, batch.rows());
    assertArrayEquals(new int[] {9, 10, 11}, Arrays.copyOf(batch.tokens(), 3));
    assertArrayEquals(new int[] {4, 5, 6}, Arrays.copyOf(batch.positions(), 3));
    assertArrayEquals(new int[] {4, 5, 6}, Arrays.copyOf(batch.slots(), 3));
    assertEquals(3, batch.samples());
    assertArrayEquals(new int[] {0, 1, 2}, Arrays.copyOf(batch.sampleRows(), 3));
    assertNull(batch.sequence(0));
  }
}
