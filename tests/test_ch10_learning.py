"""Lab 10's training path learns on the real model, after the calls the lab makes first (the pre-flight: evaluation,
gradients, generation). Its own module, so that no one-thread fixture slows it down."""

import dataclasses

from labkit.chapters.ch10_debugging import zoo
from labkit.validation import checks, pipeline


def test_the_healthy_recipe_learns_on_the_real_model():
    setup = zoo.build("healthy", "smollm2-135m")
    assert checks.preflight(setup).passed
    fixed = dataclasses.replace(setup, data=setup.data[:4], recipe=dataclasses.replace(setup.recipe, lr=3e-3))
    pad_id = setup.tokenizer.pad_token_id
    before = pipeline.eval_loss(setup.model, fixed.data, setup.recipe, pad_id)
    history = pipeline.run_recipe(fixed, 4)
    after = pipeline.eval_loss(setup.model, fixed.data, setup.recipe, pad_id)
    assert after < 0.7 * before, (before, after, history["loss"].tolist())  # the notebook's overfit check, in 4 steps
