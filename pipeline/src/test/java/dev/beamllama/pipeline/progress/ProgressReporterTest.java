package dev.beamllama.pipeline.progress;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Optional;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;

/** Rates, ETA and the plain progress line, from a source whose counts the test sets, on a clock the test moves. */
class ProgressReporterTest {
  static final long S = 1_000_000_000L;

  static final class FakeSource implements ProgressSource {
    long done;
    long tokens;
    OptionalLong total = OptionalLong.empty();

    @Override
    public long recordsDone() {
      return done;
    }

    @Override
    public long tokensGenerated() {
      return tokens;
    }

    @Override
    public OptionalLong totalRecords() {
      return total;
    }
  }

  private final ByteArrayOutputStream warnings = new ByteArrayOutputStream();
  private final FakeSource source = new FakeSource();
  private final ProgressReporter reporter = new ProgressReporter(source, null, new PrintStream(warnings, true, StandardCharsets.UTF_8), 0);

  @Test
  void ratesAreOverTheLastMinuteAndTheEtaFollowsTheRecentRecordRate() {
    source.total = OptionalLong.of(1000);
    source.done = 100;
    source.tokens = 6_000;
    Progress at60 = reporter.sample(60 * S);
    assertEquals(100.0, at60.tokensPerSecond(), 1e-9);
    assertEquals(100.0 / 60, at60.recordsPerSecond(), 1e-9);
    assertEquals(Optional.of(Duration.ofSeconds(540)), at60.eta(), "900 left at 100 a minute");

    // Faster from now on: the window forgets the slow start.
    for (int s = 70; s <= 180; s += 10) {
      source.done += 50;
      source.tokens += 5_000;
      reporter.sample(s * S);
    }
    Progress at180 = reporter.sample(180 * S);
    assertEquals(700, at180.done());
    assertEquals(500.0, at180.tokensPerSecond(), 1e-9);
    assertEquals(5.0, at180.recordsPerSecond(), 1e-9);
    assertEquals(Optional.of(Duration.ofSeconds(60)), at180.eta());
    assertEquals("progress: 700/1000 records (70.0%), 500.0 tokens/s, elapsed 3m 00s, ETA 1m 00s", at180.line());
  }

  @Test
  void withoutATotalThereIsNoEtaAndTheLineSaysTheTotalIsUnknown() {
    source.done = 42;
    source.tokens = 420;
    Progress p = reporter.sample(10 * S);
    assertEquals(Optional.empty(), p.eta());
    assertEquals("progress: 42 records (total unknown), 42.0 tokens/s, elapsed 10s", p.line());
  }

  @Test
  void aFinishedJobHasNoEta() {
    source.total = OptionalLong.of(5);
    source.done = 5;
    Progress p = reporter.sample(2 * 3600 * S + 3 * 60 * S);
    assertEquals(Optional.empty(), p.eta());
    assertEquals("progress: 5/5 records (100.0%), 0.0 tokens/s, elapsed 2h 03m", p.line());
  }

  @Test
  void moreRecordsThanCountedDropsTheTotalWithOneWarning() {
    source.total = OptionalLong.of(10);
    source.done = 11;
    Progress p = reporter.sample(S);
    assertEquals(OptionalLong.empty(), p.total(), "a total known to be wrong is not shown");
    source.done = 12;
    assertEquals(OptionalLong.empty(), reporter.sample(2 * S).total());
    String said = warnings.toString(StandardCharsets.UTF_8);
    assertTrue(said.contains("11 records finished, more than the 10 the input held when counted"), said);
    assertEquals(1, said.lines().count(), "warned once");
  }

  @Test
  void theLogDisplayPrintsOneLinePerUpdate() throws Exception {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    source.total = OptionalLong.of(3);
    ProgressReporter.Display display = new LogDisplay(new PrintStream(out, true, StandardCharsets.UTF_8), Duration.ofMillis(20));
    try (ProgressReporter live = ProgressReporter.start(source, display, new PrintStream(warnings, true, StandardCharsets.UTF_8))) {
      Thread.sleep(200);
      source.done = 3;
    }
    var lines = out.toString(StandardCharsets.UTF_8).lines().toList();
    assertTrue(lines.size() >= 3, "updates every 20 ms and a last line: " + lines);
    assertTrue(lines.getFirst().startsWith("beam-llama: progress: 0/3 records (0.0%)"), lines.getFirst());
    assertTrue(lines.getLast().startsWith("beam-llama: progress: 3/3 records (100.0%)"), "the last line is the final state: " + lines.getLast());
  }
}
