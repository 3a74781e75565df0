package dev.beamllama.transforms;

import dev.beamllama.io.DeadLetter;
import dev.beamllama.io.ErrorKind;
import dev.beamllama.io.JsonCoder;
import dev.beamllama.io.PromptRecord;
import dev.beamllama.io.SourcePosition;
import dev.beamllama.io.WithDeadLetters;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.GroupByKey;
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
    PCollection<KV<String, Iterable<PromptRecord>>> byId = records
        .apply("KeyById", WithKeys.<String, PromptRecord>of(PromptRecord::id).withKeyType(TypeDescriptors.strings()))
        .setCoder(KvCoder.of(StringUtf8Coder.of(), JsonCoder.of(PromptRecord.class)))
        .apply("GroupById", GroupByKey.create());
    return WithDeadLetters.apply(byId, "KeepFirst", new KeepFirstFn(), OUTPUT, JsonCoder.of(PromptRecord.class));
  }

  static final class KeepFirstFn extends DoFn<KV<String, Iterable<PromptRecord>>, PromptRecord> {
    @ProcessElement
    public void process(@Element KV<String, Iterable<PromptRecord>> group, MultiOutputReceiver out) {
      List<PromptRecord> records = new ArrayList<>();
      group.getValue().forEach(records::add);
      records.sort(Comparator.comparing(PromptRecord::source, SOURCE_ORDER));
      PromptRecord kept = records.get(0);
      out.get(OUTPUT).output(kept);
      for (PromptRecord duplicate : records.subList(1, records.size())) {
        out.get(WithDeadLetters.DEAD_LETTERS).output(DeadLetter.of(duplicate.source(), duplicate.id(), ErrorKind.DUPLICATE_ID,
            "id \"" + duplicate.id() + "\" is already used by the record at " + kept.source()));
      }
    }
  }
}
