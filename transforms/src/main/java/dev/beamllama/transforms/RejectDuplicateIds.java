package dev.beamllama.transforms;

import com.fasterxml.jackson.annotation.JsonProperty;
import dev.beamllama.io.DeadLetter;
import dev.beamllama.io.ErrorKind;
import dev.beamllama.io.JsonCoder;
import dev.beamllama.io.PromptRecord;
import dev.beamllama.io.SourcePosition;
import dev.beamllama.io.WithDeadLetters;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.coders.CoderRegistry;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.transforms.Combine;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.WithKeys;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.TypeDescriptors;

/**
 * Keeps one record per id: the first by source position (file, then line or row), whatever order
 * the runner read them in; every other record with that id becomes a {@code duplicate_id} dead
 * letter naming where the kept one is.
 *
 * <p>A combine per id rather than a grouping: runners merge partial results before the shuffle
 * and never hold a group in memory, and only the kept record travels with the positions of its
 * duplicates (usually none).
 */
public final class RejectDuplicateIds extends PTransform<PCollection<PromptRecord>, WithDeadLetters<PromptRecord>> {
  private static final TupleTag<PromptRecord> OUTPUT = new TupleTag<>("unique") {};

  static final Comparator<SourcePosition> SOURCE_ORDER = Comparator
      .comparing((SourcePosition p) -> p.file(), Comparator.nullsFirst(Comparator.<String>naturalOrder()))
      .thenComparingLong(p -> p.line() != null ? p.line() : p.row() != null ? p.row() : 0L);

  public static RejectDuplicateIds create() {
    return new RejectDuplicateIds();
  }

  @Override
  public WithDeadLetters<PromptRecord> expand(PCollection<PromptRecord> records) {
    PCollection<KV<String, FirstAndDuplicates>> byId = records
        .apply("KeyById", WithKeys.<String, PromptRecord>of(PromptRecord::id).withKeyType(TypeDescriptors.strings()))
        .setCoder(KvCoder.of(StringUtf8Coder.of(), JsonCoder.of(PromptRecord.class)))
        .apply("FirstPerId", Combine.perKey(new KeepFirst()))
        .setCoder(KvCoder.of(StringUtf8Coder.of(), JsonCoder.of(FirstAndDuplicates.class)));
    return WithDeadLetters.apply(byId, "RejectDuplicates", new EmitFn(), OUTPUT, JsonCoder.of(PromptRecord.class));
  }

  /** The record kept for an id so far, and where the others with that id were. */
  public record FirstAndDuplicates(
      @JsonProperty("first") PromptRecord first,
      @JsonProperty("duplicates") List<SourcePosition> duplicates) {

    FirstAndDuplicates merge(FirstAndDuplicates other) {
      if (first == null) {
        return other;
      }
      if (other.first == null) {
        return this;
      }
      boolean otherFirst = SOURCE_ORDER.compare(other.first.source(), first.source()) < 0;
      List<SourcePosition> rest = new ArrayList<>(duplicates.size() + other.duplicates.size() + 1);
      rest.addAll(duplicates);
      rest.addAll(other.duplicates);
      rest.add(otherFirst ? first.source() : other.first.source());
      return new FirstAndDuplicates(otherFirst ? other.first : first, rest);
    }
  }

  static final class KeepFirst extends Combine.CombineFn<PromptRecord, FirstAndDuplicates, FirstAndDuplicates> {
    @Override
    public FirstAndDuplicates createAccumulator() {
      return new FirstAndDuplicates(null, List.of());
    }

    @Override
    public FirstAndDuplicates addInput(FirstAndDuplicates accumulator, PromptRecord record) {
      return accumulator.merge(new FirstAndDuplicates(record, List.of()));
    }

    @Override
    public FirstAndDuplicates mergeAccumulators(Iterable<FirstAndDuplicates> accumulators) {
      FirstAndDuplicates merged = createAccumulator();
      for (FirstAndDuplicates a : accumulators) {
        merged = merged.merge(a);
      }
      return merged;
    }

    @Override
    public FirstAndDuplicates extractOutput(FirstAndDuplicates accumulator) {
      return accumulator;
    }

    @Override
    public Coder<FirstAndDuplicates> getAccumulatorCoder(CoderRegistry registry, Coder<PromptRecord> inputCoder) {
      return JsonCoder.of(FirstAndDuplicates.class);
    }
  }

  static final class EmitFn extends DoFn<KV<String, FirstAndDuplicates>, PromptRecord> {
    @ProcessElement
    public void process(@Element KV<String, FirstAndDuplicates> id, MultiOutputReceiver out) {
      FirstAndDuplicates kept = id.getValue();
      out.get(OUTPUT).output(kept.first());
      for (SourcePosition duplicate : kept.duplicates()) {
        out.get(WithDeadLetters.DEAD_LETTERS).output(DeadLetter.of(duplicate, id.getKey(), ErrorKind.DUPLICATE_ID,
            "id \"" + id.getKey() + "\" is already used by the record at " + kept.first().source()));
      }
    }
  }
}
