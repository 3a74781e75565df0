package dev.beamllama.pipeline.report;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.beamllama.transforms.StepTimeline;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The engine-step buckets behind the throughput and occupancy plots. */
class StepTimelineTest {
  static final long S = 1_000_000_000L;

  @Test
  void stepsAreSummedPerSecondAndIdleSecondsStayAsEmptyBuckets() {
    StepTimeline t = new StepTimeline(0, S);
    t.record(S / 2, 4, 100, 4);
    t.record(7 * S / 10, 2, 0, 2);
    t.record(2 * S + S / 4, 3, 10, 3);
    List<StepTimeline.Bucket> b = t.buckets(2 * S + S / 2);
    assertEquals(3, b.size());
    assertEquals(2, b.get(0).steps());
    assertEquals(3.0, b.get(0).meanSequences(), 1e-9);
    assertEquals(4, b.get(0).maxSequences());
    assertEquals(100, b.get(0).promptTokens());
    assertEquals(6.0, b.get(0).sampledTokensPerSecond(), 1e-9);
    assertEquals(0, b.get(1).steps(), "a second without steps");
    assertEquals(0.0, b.get(1).sampledTokensPerSecond());
    assertEquals(2.0, b.get(2).startSeconds(), 1e-9);
    assertEquals(0.5, b.get(2).seconds(), 1e-9, "the last bucket ends with the job");
    assertEquals(6.0, b.get(2).sampledTokensPerSecond(), 1e-9, "3 tokens in half a second");
    assertEquals(3, t.steps());
  }

  @Test
  void aLongRunMergesBucketsKeepingEveryTokenAndTheRate() {
    StepTimeline t = new StepTimeline(0, S);
    int seconds = 1000;
    for (int s = 0; s < seconds; s++) {
      t.record(s * S + S / 2, 1 + s % 8, 0, 10);
    }
    List<StepTimeline.Bucket> b = t.buckets(seconds * S);
    assertEquals(16.0, b.get(1).startSeconds(), 1e-9, "1000 s in at most 120 buckets: 16 s each (8 s would need 125)");
    assertEquals(63, b.size());
    assertEquals(seconds * 10L, b.stream().mapToLong(StepTimeline.Bucket::sampledTokens).sum());
    assertEquals(seconds, b.stream().mapToLong(StepTimeline.Bucket::steps).sum());
    for (StepTimeline.Bucket bucket : b) {
      assertEquals(10.0, bucket.sampledTokensPerSecond(), 1e-9);
      assertEquals(4.5, bucket.meanSequences(), 1e-9, "1..8 sequences, a whole number of cycles per bucket");
      assertEquals(8, bucket.maxSequences());
    }
  }
}
