from .attention import attention_to_image, predict_with_attention
from .query_centres import collect_query_boxes, plot_query_centres

__all__ = [
    'attention_to_image', 'predict_with_attention', 'collect_query_boxes', 'plot_query_centres'
]
