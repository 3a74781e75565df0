package dev.beamllama.transforms;

import dev.beamllama.io.DeadLetter;
import dev.beamllama.io.ErrorKind;
import dev.beamllama.io.JsonCoder;
import dev.beamllama.io.PromptRecord;
import dev.beamllama.io.SourcePosition;
import java.util.List;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.WithFailures;
import org.apache.beam.sdk.values.PCollection;
import org.junit.jupiter.api.Test;

/**
 * RejectDuplicateIds: the first record of an id by source position (file, then line or row, in
 * number order) is kept whatever order the records come in; every other one is a duplicate_id dead
 * letter naming where the kept one is.
 */
class RejectDuplicateIdsTest {
  /** Beam's TestPipeline without JUnit 4's rule: run() still fails when an assertion failed or never ran. */
  private final TestPipeline p = TestPipeline.create().enableAbandonedNodeEnforcement(false);

  @Test
  void theFirstRecordByPositionIsKeptAndTheOthersAreDeadLetters() {
    PromptRecord xLate = record("x", SourcePosition.line("a.jsonl", 5));
    PromptRecord xFirst = record("x", SourcePosition.line("a.jsonl", 2));
    PromptRecord xOtherFile = record("x", SourcePosition.line("b.jsonl", 1));
    PromptRecord y = record("y", SourcePosition.row("a.parquet", 3));
    PromptRecord zRow10 = record("z", SourcePosition.row("b.parquet", 10));
    PromptRecord zRow2 = record("z", SourcePosition.row("b.parquet", 2));

    WithFailures.Result<PCollection<PromptRecord>, DeadLetter> unique = p
        .apply(Create.of(List.of(xLate, zRow10, xOtherFile, y, xFirst, zRow2)).withCoder(JsonCoder.of(PromptRecord.class)))
        .apply(RejectDuplicateIds.create());

    PAssert.that(unique.output()).containsInAnyOrder(xFirst, y, zRow2);
    PAssert.that(unique.failures()).containsInAnyOrder(
        DeadLetter.of(xLate.source(), "x", ErrorKind.DUPLICATE_ID, "id \"x\" is already used by the record at a.jsonl:2"),
        DeadLetter.of(xOtherFile.source(), "x", ErrorKind.DUPLICATE_ID, "id \"x\" is already used by the record at a.jsonl:2"),
        DeadLetter.of(zRow10.source(), "z", ErrorKind.DUPLICATE_ID, "id \"z\" is already used by the record at b.parquet row 2"));
    p.run();
  }

  private static PromptRecord record(String id, SourcePosition at) {
    return new PromptRecord(id, null, null, "질문 " + at, null, null, null, null, PromptRecord.SamplingOverrides.NONE, at);
  }
}
